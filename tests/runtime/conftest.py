"""Fixtures for the runtime conformance matrix: the models are built once per session with the
converters' default options, and scored by onnxruntime as the oracle."""

import os
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from support import steward_bin  # noqa: E402
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def models_dir():
    import make_models

    out = Path(tempfile.mkdtemp(prefix="steward-conformance-"))
    sys.argv = ["make_models.py", str(out)]
    make_models.main()
    return out
