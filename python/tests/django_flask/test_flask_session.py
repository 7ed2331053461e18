"""sessionbroker.flask with Flask's test client: the session persists behind a signed id cookie,
requests of one session serialise across real processes and across threads (no lost update), a
failed request (exception or 500) writes nothing and gives the lock back, an emptied session is
destroyed, and the broker TTL is the app's session lifetime.

/incr reads, pauses, then writes the counter: without a lock held for the whole request, two
concurrent requests lose an update and the final count falls short.
"""
import threading
import time

import pytest

from procs import fork, join

flask = pytest.importorskip("flask", reason="Flask is not installed (Debian: python3-flask)")
import sessionbroker  # noqa: E402
from sessionbroker.flask import SessionbrokerInterface  # noqa: E402


@pytest.fixture
def app(segment):
    app = flask.Flask(__name__)
    app.secret_key = "sessionbroker-flask-tests"
    app.session_interface = SessionbrokerInterface(segment=segment, lock_timeout=10)

    @app.route("/incr")
    def incr():
        n = flask.session.get("n", 0)
        time.sleep(float(flask.request.args.get("pause", 0)))
        flask.session["n"] = n + 1
        return str(n + 1)

    @app.route("/get")
    def get():
        return str(flask.session.get("n", 0))

    @app.route("/boom")
    def boom():
        flask.session["n"] = -1
        raise RuntimeError("a view that fails after writing to the session")

    @app.route("/fail500")
    def fail500():
        flask.session["n"] = -1
        return "failed", 500

    @app.route("/clear")
    def clear():
        flask.session.clear()
        return "cleared"

    app.logger.disabled = True  # the deliberate exception needs no traceback on stderr
    return app


def session_cookie(response):
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith("session="):
            return header.split(";", 1)[0][len("session="):]
    return None


def get(app, url, cookie):
    return app.test_client(use_cookies=False).get(url, headers={"Cookie": "session=" + cookie})


def new_session(app):
    """The signed cookie of a new session holding n = 1."""
    cookie = session_cookie(app.test_client().get("/incr"))
    assert cookie
    return cookie


def broker_id(app, cookie):
    iface = app.session_interface
    return iface.key_prefix + iface._signer(app).loads(cookie)


def test_session_persists_behind_a_signed_cookie(app):
    cookie = new_session(app)
    assert get(app, "/incr", cookie).data == b"2"
    assert get(app, "/get", cookie).data == b"2"
    sid = app.session_interface._signer(app).loads(cookie)
    assert get(app, "/get", sid).data == b"0"  # an unsigned id is refused
    assert get(app, "/get", cookie[:-2] + "xx").data == b"0"  # so is a forged signature


def test_requests_of_one_session_in_three_processes_lose_no_update(app):
    cookie = new_session(app)
    per_child = 40

    def hammer():
        for _ in range(per_child):
            assert get(app, "/incr?pause=0.001", cookie).status_code == 200

    assert join([fork(hammer) for _ in range(3)]) == [0, 0, 0]
    assert get(app, "/get", cookie).data == str(1 + 3 * per_child).encode()


def test_requests_of_one_session_in_four_threads_lose_no_update(app):
    cookie = new_session(app)
    statuses = []

    def hammer():
        for _ in range(25):
            statuses.append(get(app, "/incr?pause=0.001", cookie).status_code)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 100
    assert get(app, "/get", cookie).data == b"101"


def take_in_other_process(segment, sid):
    """In a child: locks the broker session within 5 s (fails if the request kept it)."""
    with sessionbroker.Client.attach(segment).open(sid).lock(timeout=5) as lock:
        assert b"\n" in lock["flask"]


@pytest.mark.parametrize("url", ["/boom", "/fail500"])
def test_failed_request_writes_nothing_and_releases_the_lock(app, segment, url):
    cookie = new_session(app)
    assert get(app, url, cookie).status_code == 500
    assert join([fork(take_in_other_process, segment, broker_id(app, cookie))]) == [0]
    assert get(app, "/get", cookie).data == b"1"  # the -1 written before the failure is not saved


def test_emptied_session_is_destroyed_and_its_cookie_deleted(app):
    cookie = new_session(app)
    response = get(app, "/clear", cookie)
    assert session_cookie(response) == ""  # deleted: an empty value that expires at once
    with pytest.raises(sessionbroker.NotFound):
        app.session_interface.client().open(broker_id(app, cookie))


def test_broker_ttl_is_the_apps_session_lifetime(app):
    cookie = new_session(app)
    with app.session_interface.client().open(broker_id(app, cookie)).lock(timeout=5) as lock:
        remaining = lock.ttl_remaining()
    lifetime = app.permanent_session_lifetime.total_seconds()  # 31 days, not the broker's 30 min
    assert lifetime - 3600 < remaining <= lifetime
