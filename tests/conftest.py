"""Shared fixtures: a small deterministic twin reused across the session (rendering is the slow part)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.twin import DigitalTwin, TwinConfig

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def small_twin() -> DigitalTwin:
    """A 320x240 twin with the default 4-camera rig, seed 0."""
    return DigitalTwin(TwinConfig(seed=0, width_px=320, height_px=240))
