"""One in-process stand-in server for the self-tests (no broker, no store)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from standin.client import Standin  # noqa: E402


@pytest.fixture(scope="session")
def server():
    s = Standin()
    yield s
    s.stop()


@pytest.fixture
def st(server):
    server.reset()
    server.clock(offset_s=0)
    yield server
