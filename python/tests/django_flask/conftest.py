"""Fixtures of the Django and Flask backend tests: one session-broker for the whole run (its
segment removed at the end), Django configured on it (djproject), and fork helpers for the
multi-process tests in ../support/procs.py."""
import os
import sys

import pytest

_here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _here)
sys.path.insert(0, os.path.join(os.path.dirname(_here), "support"))  # broker.py, procs.py
from broker import Broker  # noqa: E402


@pytest.fixture(scope="session")
def segment():
    with Broker() as name:
        yield name


@pytest.fixture(scope="session")
def djproject(segment):
    pytest.importorskip("django", reason="Django is not installed (Debian: python3-django)")
    os.environ["SB_SEGMENT"] = segment
    import djproject
    return djproject
