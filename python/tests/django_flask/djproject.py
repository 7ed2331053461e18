"""A minimal Django project for the tests, in one module: settings, views, URLs, WSGI application.

Settings are the two lines a user adds (SESSION_ENGINE, SESSIONBROKER_SEGMENT, the segment from
$SB_SEGMENT) plus what any project has; no app or middleware of ours. Served by Django's test
client in the pytest process (and its forked children), or by gunicorn (`djproject:application`).
With $SB_PRELOAD_KEYFILE set, importing it serves one request that creates a session and writes
its key to that file (as a gunicorn --preload master that serves a warm-up request would).
"""
import os
import time

import django
from django.conf import settings
from django.http import HttpResponse
from django.urls import path

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="sessionbroker-tests",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"],
        SESSION_ENGINE="sessionbroker.django",
        SESSIONBROKER_SEGMENT=os.environ["SB_SEGMENT"],
        LOGGING_CONFIG=None,  # the views' deliberate exceptions need no traceback on stderr
    )
    django.setup()


def incr(request):
    """Read-modify-write of a counter; ?pause= widens the window between read and write."""
    n = request.session.get("n", 0)
    time.sleep(float(request.GET.get("pause", 0)))
    request.session["n"] = n + 1
    return HttpResponse("%d %d" % (n + 1, os.getpid()))


def get(request):
    return HttpResponse("%s %s" % (request.session.get("n", 0), os.getpid()))


def boom(request):
    request.session["n"] = -1
    raise RuntimeError("a view that fails after writing to the session")


def fail500(request):
    request.session["n"] = -1
    return HttpResponse("failed", status=500)


def deleted_meanwhile(request):
    """The session is deleted (another store, e.g. a logout) before the request's save."""
    from sessionbroker.django import SessionStore
    request.session.get("n")  # loaded (and locked) first
    SessionStore(request.session.session_key).delete()
    request.session["n"] = 1
    return HttpResponse("ok")


def logout(request):
    request.session.flush()
    return HttpResponse("bye")


urlpatterns = [path("incr", incr), path("get", get), path("boom", boom), path("fail500", fail500),
               path("deleted_meanwhile", deleted_meanwhile), path("logout", logout)]

from django.core.wsgi import get_wsgi_application  # noqa: E402 (after settings)

application = get_wsgi_application()

if os.environ.get("SB_PRELOAD_KEYFILE"):
    from django.test import Client
    warm = Client()
    warm.get("/incr")
    with open(os.environ["SB_PRELOAD_KEYFILE"], "w") as f:
        f.write(warm.cookies["sessionid"].value)
