"""Shared fixtures: small models on disk, the sample models, hypothesis profiles."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).parent))

import models

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_models"
GOLDEN = Path(__file__).parent / "golden"

settings.register_profile(
    "dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.onnx"
    onnx.save(models.tiny_cnn(), path)
    return path


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.npz"
    np.savez(path, x=models.tiny_inputs())
    return path


def sample(name: str) -> Path:
    """A bundled sample model or data file; skips the test when it is not there."""
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"sample_models/{name} is not present")
    return path
