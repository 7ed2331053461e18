#!/usr/bin/python3
"""Runs Django 3.2's own session tests, unmodified, against sessionbroker.django.

    run_django_session_tests.py DJANGO_TESTS_DIR   # tests/ of Debian's python-django source

Imports SessionTestsMixin and SessionMiddlewareTests from DJANGO_TESTS_DIR/sessions_tests/tests.py
and runs, through Django's own test runner (DiscoverRunner: test database, checks, TestCase),
    class SessionbrokerTests(SessionTestsMixin, TestCase): backend = SessionStore
and SessionMiddlewareTests with SESSION_ENGINE = "sessionbroker.django", on a segment of a
session-broker started for the run (SESSIONBROKER_BROKER names the binary). EXCLUDED lists the
tests left out and why: only ones written against another backend's internals.
Exit status: 0 all passed, 1 a failure, 77 Django is not installed (ctest's skip code).
"""
import os
import sys
import unittest

EXCLUDED = {
    "test_session_update_error_redirect":
        "replaces request.session with django.contrib.sessions.backends.db.SessionStore: it tests "
        "the database backend (our UpdateError -> SessionInterrupted case is in our pytest)",
    "test_empty_session_saved":
        "reads the saved session back through the database model (Session.objects.get)",
}


def configure(tests_dir, segment):
    from django.conf import settings
    sys.path.insert(0, tests_dir)  # the `sessions_tests` package (its models module is a test app)
    settings.configure(
        SECRET_KEY="sessionbroker-django-suite",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.sessions", "sessions_tests"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        SESSION_ENGINE="sessionbroker.django",
        SESSIONBROKER_SEGMENT=segment,
    )
    import django
    django.setup()


def build_suite():
    from django.test import TestCase
    from sessions_tests.tests import SessionMiddlewareTests, SessionTestsMixin

    from sessionbroker.django import SessionStore

    class SessionbrokerTests(SessionTestsMixin, TestCase):
        backend = SessionStore

    SessionbrokerTests.__qualname__ = "SessionbrokerTests"
    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    for case in (SessionbrokerTests, SessionMiddlewareTests):
        for name in loader.getTestCaseNames(case):
            if name not in EXCLUDED:
                suite.addTest(case(name))
    return suite


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    try:
        import django  # noqa: F401
    except ImportError:
        print("SKIP: Django is not installed (Debian: apt-get install python3-django)")
        return 77
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:0] = [here, os.path.join(os.path.dirname(here), "support")]
    from broker import Broker
    from django.test.runner import DiscoverRunner

    class Runner(DiscoverRunner):
        def build_suite(self, *args, **kwargs):
            return build_suite()

    with Broker() as segment:
        configure(os.path.abspath(sys.argv[1]), segment)
        for name, why in sorted(EXCLUDED.items()):
            print("excluded %s: %s" % (name, why))
        failures = Runner(verbosity=2).run_tests([])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
