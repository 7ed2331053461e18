"""sessionbroker: locked access to shared session state from the processes of one host.

    import sessionbroker
    client = sessionbroker.Client.attach("sessionbroker")
    with client.open("user:42").lock(["cart"], timeout=0.1) as lock:
        lock["cart"] = lock.get("cart", b"") + b"apple;"

Everything is implemented by the native module _sessionbroker (a thin layer over the C API,
sessionbroker.h); see its type stubs (_sessionbroker.pyi) for the API and python/README.md for
the fork rules (gunicorn --preload). Importing it registers an os.register_at_fork hook (clients
made before a fork attach again in the child) and an atexit hook (clients detach at exit).
"""

from ._sessionbroker import (
    AlreadyExists,
    Busy,
    CapacityExceeded,
    Client,
    Corrupt,
    Detached,
    Error,
    Incompatible,
    InvalidArgument,
    Lock,
    NoSegment,
    NotFound,
    NotHeld,
    PermissionDenied,
    Session,
    StaleToken,
    SystemFailure,
    Timeout,
    TooLarge,
    Unavailable,
)

__all__ = [
    "AlreadyExists", "Busy", "CapacityExceeded", "Client", "Corrupt", "Detached", "Error",
    "Incompatible", "InvalidArgument", "Lock", "NoSegment", "NotFound", "NotHeld",
    "PermissionDenied", "Session", "StaleToken", "SystemFailure", "Timeout", "TooLarge",
    "Unavailable",
]
