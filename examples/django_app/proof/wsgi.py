"""WSGI entry point: gunicorn proof.wsgi:application (with examples/django_app on the path)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proof.settings")
application = get_wsgi_application()
