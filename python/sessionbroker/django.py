"""Django session engine on sessionbroker: two settings lines, a lock per request.

    SESSION_ENGINE = "sessionbroker.django"
    SESSIONBROKER_SEGMENT = "sessionbroker"          # the segment session-broker serves

Optional: SESSIONBROKER_LOCK_TIMEOUT (seconds a request waits for its session, default 30; None
waits without limit) and SESSIONBROKER_KEY_PREFIX (prefix of the broker's session ids, default
"django:", so other users of the segment and clear_expired() keep apart).

Lock per request. The first time a request's session is loaded (or saved), its thread takes the
exclusive lock on the whole broker session and keeps it until the request ends: Django sends
`request_finished` when the WSGI server closes the response (also after an exception or a 500),
and release_locks() then discards and unlocks every lock the thread holds. Writes reach the broker
only in save(), which commits; so a write the middleware did not save (an exception, a 500) is
never published. Two requests of one session in two processes, or in two threads, run one after
the other and each sees the other's committed state: no lost update.

One lock per thread and session. Django (and its tests) may build several SessionStores on one key
in one thread; a second thread lock on the same session from the same thread would wait for
itself. So the locks live in a per-thread registry keyed by session key, shared by the stores of
that thread: whichever store locks first, the others use its lock. A session destroyed through one
store (delete, flush, cycle_key) leaves the registry, and the others then see it as gone
(load() gives {}, save() raises UpdateError).

Storage. A session is one broker attribute, "django": b"<expiry unix time>\\n" + the session dict
in SESSION_SERIALIZER's format (no signing: only processes the segment's mode admits can read it).
Expiry is Django's: save() stores now + get_expiry_age() and sets the broker TTL to that age (the
broker's default TTL is far shorter than Django's two weeks), so an idle session is reclaimed by
the broker; a session loaded past its expiry (a zero or negative age included) is destroyed and
loads as empty; clear_expired() destroys the expired ones nobody holds.

Thread safety: the registry is per thread; the Client is shared, attached once per process (a
forked child re-attaches by itself, and forgets the parent's per-thread locks here). Under ASGI,
Django runs sync code of many requests in one thread, which this engine does not support.
"""
import os
import threading
import time

from django.conf import settings
from django.contrib.sessions.backends.base import (
    VALID_KEY_CHARS, CreateError, SessionBase, UpdateError,
)
from django.core.signals import request_finished
from django.utils.crypto import get_random_string

import sessionbroker

ATTR = "django"
_GONE = (sessionbroker.NotFound, sessionbroker.InvalidArgument)  # an id that is absent or invalid

_client = None
_client_lock = threading.Lock()
_local = threading.local()


def client():
    """The process's sessionbroker.Client, attached on first use to SESSIONBROKER_SEGMENT."""
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                _client = sessionbroker.Client.attach(settings.SESSIONBROKER_SEGMENT)
    return _client


def _timeout():
    return getattr(settings, "SESSIONBROKER_LOCK_TIMEOUT", 30.0)


def _prefix():
    return getattr(settings, "SESSIONBROKER_KEY_PREFIX", "django:")


def _held():
    """This thread's locks: session key -> its exclusive whole-session lock."""
    try:
        return _local.held
    except AttributeError:
        _local.held = {}
        return _local.held


def release_locks(**kwargs):
    """Discards uncommitted writes and unlocks every session lock this thread holds.

    Connected to request_finished; call it yourself after using SessionStore outside a request
    (a management command, a task queue worker), or the thread keeps its sessions locked.
    """
    held = _held()
    if not held:
        return
    _local.held = {}
    for lock in held.values():
        try:
            lock.discard()
        except sessionbroker.Error:
            pass  # lost meanwhile (stale) or detached: nothing of ours to give back


request_finished.connect(release_locks, dispatch_uid="sessionbroker.django.release_locks")
# A forked child (gunicorn --preload) must not use the parent's thread locks; the Client
# re-attaches by itself.
os.register_at_fork(after_in_child=lambda: _local.__dict__.pop("held", None))


def _parse(raw):
    """(expiry unix time, payload) of a stored session."""
    expiry, _, payload = raw.partition(b"\n")
    return float(expiry), payload


class SessionStore(SessionBase):
    """A Django session in a sessionbroker segment, exclusively locked for the request."""

    def _lock(self, key):
        """This thread's lock on `key`, taken now if not yet held; None when the session is gone.

        REQUIRES: key is a valid session key. Raises sessionbroker.Timeout when another request
        holds the session longer than SESSIONBROKER_LOCK_TIMEOUT.
        """
        held = _held()
        lock = held.get(key)
        if lock is None:
            try:
                lock = client().open(_prefix() + key).lock(None, exclusive=True, timeout=_timeout())
            except _GONE:
                return None
            held[key] = lock
        return lock

    def _forget(self, key):
        """Drops this thread's lock on `key` (destroyed or lost) without touching the broker."""
        _held().pop(key, None)

    def load(self):
        key = self.session_key
        lock = self._lock(key) if key is not None else None
        if lock is not None:
            try:
                raw = lock.get(ATTR)
            except sessionbroker.StaleToken:  # taken from us (break-lock, expire): start over
                self._forget(key)
                raw = lock = None
            if raw is not None:
                expiry, payload = _parse(raw)
                if expiry > time.time():
                    return self._decode_payload(payload)
            if lock is not None:  # expired, or never written: it is dead, reclaim it now
                self._destroy_held(key, lock)
        self._session_key = None
        return {}

    def _decode_payload(self, payload):
        try:
            return self.serializer().loads(payload)
        except Exception:  # as SessionBase.decode: unreadable data is an empty session
            return {}

    def exists(self, session_key):
        if not session_key:
            return False
        if session_key in _held():
            return True
        try:
            client().open(_prefix() + session_key)
        except _GONE:
            return False
        return True

    def _get_new_session_key(self):
        # No exists() round trip: create() learns of a collision from the broker (AlreadyExists).
        return get_random_string(32, VALID_KEY_CHARS)

    def create(self):
        while True:
            self._session_key = self._get_new_session_key()
            try:
                self.save(must_create=True)
            except CreateError:
                continue  # the id was taken: draw another
            self.modified = True
            return

    def save(self, must_create=False):
        """Commits the session with its expiry; the lock stays held until the request ends.

        must_create: the session must not exist yet (CreateError if it does). Otherwise it must
        still exist (UpdateError when it was deleted or its lock lost meanwhile).
        """
        if self.session_key is None:
            return self.create()
        key = self.session_key
        data = self._get_session(no_load=must_create)
        age = self.get_expiry_age()
        ttl = max(float(age), 1.0)  # the broker reclaims it once idle for Django's age
        if must_create:
            lock = self._create_locked(key, ttl)
        else:
            lock = self._lock(key)
            if lock is None:
                raise UpdateError
        blob = b"%.3f\n" % (time.time() + age) + self.serializer().dumps(data)
        try:
            lock[ATTR] = blob
            if not must_create:
                lock.set_ttl(ttl)
            lock.commit()
        except sessionbroker.StaleToken:
            self._forget(key)
            raise UpdateError

    def _create_locked(self, key, ttl):
        """Creates the broker session `key` and locks it for this thread; CreateError if taken."""
        try:
            session = client().create(_prefix() + key, ttl=ttl)
            lock = session.lock(None, exclusive=True, timeout=_timeout())
        except (sessionbroker.AlreadyExists, sessionbroker.NotFound):
            raise CreateError
        _held()[key] = lock
        return lock

    def _destroy_held(self, key, lock):
        """Destroys `key` under this thread's lock on it; False when the lock was lost first."""
        self._forget(key)
        try:
            lock.destroy()
        except (sessionbroker.StaleToken, sessionbroker.NotFound):
            return False
        return True

    def delete(self, session_key=None):
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        lock = _held().get(session_key)
        if lock is not None and self._destroy_held(session_key, lock):
            return
        try:  # not ours (or lost): take the lock from whoever has it, then destroy
            client().destroy(_prefix() + session_key, timeout=_timeout())
        except _GONE:
            pass

    @classmethod
    def clear_expired(cls):
        """Destroys every expired Django session of the segment that no request holds now."""
        broker, prefix, now = client(), _prefix(), time.time()
        for sid in broker.list():
            if not sid.startswith(prefix):
                continue
            try:
                lock = broker.open(sid).lock(None, exclusive=True, timeout=0)
            except (sessionbroker.Busy, sessionbroker.NotFound):
                continue  # in use (so not idle) or gone already
            try:
                raw = lock.get(ATTR)
                if raw is not None and _parse(raw)[0] <= now:
                    lock.destroy()  # (one never written is left to its broker TTL)
                else:
                    lock.discard()
            except (sessionbroker.StaleToken, sessionbroker.NotFound):
                pass
