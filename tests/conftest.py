"""Shared fixtures: a small deterministic twin reused across the session (rendering is the slow part)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.twin import DigitalTwin, TwinConfig

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def small_twin() -> DigitalTwin:
    """A 320x240 twin with the default 4-camera rig, seed 0."""
    return DigitalTwin(TwinConfig(seed=0, width_px=320, height_px=240))


# Property-based tests explore new inputs on every local run; CI replays a fixed sequence so a
# submission's result does not depend on luck, and no deadline flakes on a loaded 2-core machine.
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
