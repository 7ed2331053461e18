"""Three views on one counter in the session.

/start  a new session with n = 0 (the response sets its cookie)
/incr   n = n + 1 as a read-modify-write: read at the start of the view, written when the
        response is saved; ?spin=K burns K iterations of a CPU-only loop in between (no sleep,
        default 0) to widen the window in which another request of the session can interleave
/get    n
Each answers with the counter as text.
"""
from django.http import HttpResponse


def _text(n):
    return HttpResponse(str(n), content_type="text/plain")


def start(request):
    request.session["n"] = 0
    return _text(0)


def incr(request):
    n = request.session.get("n", 0)
    x = 0
    for i in range(int(request.GET.get("spin", 0))):
        x += i
    request.session["n"] = n + 1
    return _text(n + 1)


def get(request):
    return _text(request.session.get("n", 0))
