"""Settings of the example: one project, four session backends, picked by $SB_DJANGO_BACKEND.

    db               Django's database backend on SQLite ($SB_DJANGO_SQLITE, the file; migrate first)
    cache            Django's cache backend on django-redis ($SB_DJANGO_REDIS, e.g.
                     unix:///tmp/x/redis.sock?db=0)
    signed_cookies   Django's signed-cookie backend: the cookie is the session
    sessionbroker    sessionbroker.django on the segment $SB_DJANGO_SEGMENT (default "sessionbroker"):
                     the two lines a project adds are SESSION_ENGINE and SESSIONBROKER_SEGMENT

Everything else is Django's default (no persistent database connections, the JSON serializer,
no logging of requests).
"""
import os

from django.core.exceptions import ImproperlyConfigured

BACKEND = os.environ.get("SB_DJANGO_BACKEND", "sessionbroker")

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "sessionbroker-example-not-a-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "proof.urls"
WSGI_APPLICATION = "proof.wsgi.application"
MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware"]
INSTALLED_APPS = []
DATABASES = {}
USE_TZ = True

if BACKEND == "db":
    SESSION_ENGINE = "django.contrib.sessions.backends.db"
    INSTALLED_APPS = ["django.contrib.sessions"]  # its Session model and migration
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                             "NAME": os.environ["SB_DJANGO_SQLITE"]}}
elif BACKEND == "cache":
    SESSION_ENGINE = "django.contrib.sessions.backends.cache"
    CACHES = {"default": {"BACKEND": "django_redis.cache.RedisCache",
                          "LOCATION": os.environ["SB_DJANGO_REDIS"]}}
elif BACKEND == "signed_cookies":
    SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
elif BACKEND == "sessionbroker":
    SESSION_ENGINE = "sessionbroker.django"
    SESSIONBROKER_SEGMENT = os.environ.get("SB_DJANGO_SEGMENT", "sessionbroker")
else:
    raise ImproperlyConfigured("SB_DJANGO_BACKEND: db, cache, signed_cookies or sessionbroker, not %r"
                               % BACKEND)
