"""Flask session interface on sessionbroker: a lock per request, a signed session-id cookie.

    from sessionbroker.flask import SessionbrokerInterface
    app.session_interface = SessionbrokerInterface(segment="sessionbroker")

Lock per request. open_session() (called when the request context is pushed) reads the session-id
cookie, checks its signature (itsdangerous, keyed by app.secret_key, as Flask signs its own
cookie), and takes the exclusive lock on the whole broker session; the request keeps it until its
teardown. save_session() commits (creating the broker session for a new one), unless the response
is a server error (status >= 500: an exception in the view, or a 500 the view returned), in which
case nothing is written. Teardown (a teardown_request function the interface adds to the app on
its first request, which Flask runs after every request, exception or not) discards anything
uncommitted and unlocks. Two requests of one session, in two processes or two threads, run one
after the other: no lost update.

Storage: one attribute "flask" = b"<expiry unix time>\\n" + the session dict in Flask's tagged JSON
(bytes, datetime, tuple, UUID and Markup survive). Lifetime: app.permanent_session_lifetime, which
Flask also applies to its own cookie's signature; the broker TTL is set to it on every save, and an
expired session loads as empty. An emptied session is destroyed and its cookie deleted.

Thread safety: one SessionbrokerInterface serves all threads; each request's lock belongs to the
thread that runs the request (Flask runs a request's open, view, save and teardown on one thread).
"""
import secrets
import threading
import time

from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SessionInterface, SessionMixin
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.datastructures import CallbackDict

import sessionbroker

ATTR = "flask"
_json = TaggedJSONSerializer()


class BrokerSession(CallbackDict, SessionMixin):
    """The request's session dict. `sid` is None until a new session is first saved; `lock` is
    the request's exclusive lock on the broker session (None while there is none)."""

    def __init__(self, initial=None, sid=None, lock=None):
        def on_update(self):
            self.modified = True
            self.accessed = True

        super().__init__(initial, on_update)
        self.sid = sid
        self.lock = lock
        self.new = sid is None
        self.modified = False
        self.accessed = False

    def __getitem__(self, key):
        self.accessed = True
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.accessed = True
        return super().get(key, default)

    def setdefault(self, key, default=None):
        self.accessed = True
        return super().setdefault(key, default)


class SessionbrokerInterface(SessionInterface):
    """Flask sessions in a sessionbroker segment, exclusively locked for the whole request.

    segment: the broker's segment name. lock_timeout: seconds a request waits for its session
    (None: no limit); past it, sessionbroker.Timeout fails the request. key_prefix: prefix of the
    broker's session ids (keeps Flask's sessions apart from other users of the segment).
    """

    salt = "sessionbroker-flask-session"

    def __init__(self, segment, lock_timeout=30.0, key_prefix="flask:"):
        self.segment = segment
        self.lock_timeout = lock_timeout
        self.key_prefix = key_prefix
        self._client = None
        self._mutex = threading.Lock()

    def client(self):
        """The sessionbroker.Client, attached on first use (a forked child re-attaches itself)."""
        if self._client is None:
            with self._mutex:
                if self._client is None:
                    self._client = sessionbroker.Client.attach(self.segment)
        return self._client

    def _signer(self, app):
        return URLSafeTimedSerializer(app.secret_key, salt=self.salt)

    def _install_teardown(self, app):
        # Flask refuses teardown_request() once an app served a request, and the interface first
        # meets its app in a request: register in the dict Flask reads at every teardown instead.
        funcs = app.teardown_request_funcs.get(None, ())
        if _teardown not in funcs:
            with self._mutex:
                funcs = app.teardown_request_funcs.setdefault(None, [])
                if _teardown not in funcs:
                    funcs.append(_teardown)

    def open_session(self, app, request):
        if not app.secret_key:
            return None  # Flask then uses a null session that refuses writes, as with its own
        self._install_teardown(app)
        sid = self._sid_from_cookie(app, request)
        if sid is None:
            return BrokerSession()
        try:
            session = self.client().open(self.key_prefix + sid)
        except (sessionbroker.NotFound, sessionbroker.InvalidArgument):
            return BrokerSession()
        lock = session.lock(None, exclusive=True, timeout=self.lock_timeout)
        try:
            raw = lock.get(ATTR)
        except sessionbroker.StaleToken:
            raw = None
        if raw is not None:
            expiry, _, payload = raw.partition(b"\n")
            if float(expiry) > time.time():
                return BrokerSession(_json.loads(payload.decode()), sid, lock)
        try:  # expired (or never written): reclaim it now; the request starts a new session
            lock.destroy()
        except (sessionbroker.StaleToken, sessionbroker.NotFound):
            pass
        return BrokerSession()

    def _sid_from_cookie(self, app, request):
        cookie = request.cookies.get(self.get_cookie_name(app))
        if not cookie:
            return None
        max_age = int(app.permanent_session_lifetime.total_seconds())
        try:
            return self._signer(app).loads(cookie, max_age=max_age)
        except BadSignature:
            return None

    def save_session(self, app, session, response):
        name, domain = self.get_cookie_name(app), self.get_cookie_domain(app)
        path = self.get_cookie_path(app)
        if response.status_code >= 500:
            return  # a failed request writes nothing; teardown discards and unlocks
        if not session:
            if session.modified and session.lock is not None:
                _destroy(session)
                response.delete_cookie(name, domain=domain, path=path,
                                       secure=self.get_cookie_secure(app),
                                       samesite=self.get_cookie_samesite(app))
            return
        if session.accessed:
            response.vary.add("Cookie")
        if not self.should_set_cookie(app, session):
            return
        lifetime = app.permanent_session_lifetime.total_seconds()
        if session.lock is None:
            self._create(session, lifetime)
        blob = b"%.3f\n" % (time.time() + lifetime) + _json.dumps(dict(session)).encode()
        session.lock[ATTR] = blob
        session.lock.set_ttl(lifetime)
        session.lock.commit()
        response.set_cookie(name, self._signer(app).dumps(session.sid),
                            expires=self.get_expiration_time(app, session),
                            httponly=self.get_cookie_httponly(app), domain=domain, path=path,
                            secure=self.get_cookie_secure(app),
                            samesite=self.get_cookie_samesite(app))

    def _create(self, session, lifetime):
        """Creates the broker session of a new `session` under a fresh id, locked for now."""
        while True:
            sid = secrets.token_urlsafe(32)
            try:
                broker_session = self.client().create(self.key_prefix + sid, ttl=lifetime)
                break
            except sessionbroker.AlreadyExists:
                continue
        session.lock = broker_session.lock(None, exclusive=True, timeout=self.lock_timeout)
        session.sid = sid


def _destroy(session):
    lock, session.lock = session.lock, None
    try:
        lock.destroy()
    except (sessionbroker.StaleToken, sessionbroker.NotFound):
        pass


def _teardown(exc):
    """Ends the request's hold on its session: drops uncommitted writes and unlocks."""
    from flask import session
    lock = getattr(session, "lock", None)
    if lock is not None:
        session.lock = None
        try:
            lock.discard()
        except sessionbroker.Error:
            pass  # lost meanwhile: nothing of ours to give back
