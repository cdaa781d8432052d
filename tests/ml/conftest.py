"""The ml reference checks need ml-eval (built with everything) and the
packages of tests/ml/setup; tests/ml/run provides both."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mlref  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _ml_eval_built():
    path = mlref.ml_eval_path()
    if not path.exists():
        pytest.fail(f"{path} is missing: build first (compose/local/build)")
