"""Shared fixtures: the shipped model and freshly rendered synthetic scenes."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MODEL = ROOT / "models" / "cube_detect.tflite"


@pytest.fixture(scope="session")
def shipped_model() -> Path:
    assert SHIPPED_MODEL.is_file(), f"{SHIPPED_MODEL} missing: it is committed with the package"
    return SHIPPED_MODEL
