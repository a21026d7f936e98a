"""SeamSeg's own parts: where its generator plants defects, and its errors. Its contract, detection
of a planted defect and ONNX parity are checked with the other models in test_models.py."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.models import FitContext, train
from pipeline.models.errors import TrainingError
from pipeline.models.seamseg import PRESETS
from pipeline.models.seamseg_fit import bead_mask, synthetic_defects


def _frames(n: int) -> np.ndarray:
    """Grey paint with one bright vertical bead (x 78-81) wandering by a pixel, zero outside an ROI
    band (x 60-99), as the masked contrast input of one view: (n, 120, 160, 3) uint8."""
    rng = np.random.default_rng(0)
    out = np.zeros((n, 120, 160, 3), np.uint8)
    for i in range(n):
        out[i, :, 60:100] = 20 + rng.integers(0, 6, (120, 40, 1))
        x0 = 78 + int(rng.integers(-1, 2))
        out[i, :, x0:x0 + 3] = 200
    return out


def test_the_generator_plants_every_type_on_the_bead_and_inside_the_roi() -> None:
    frames = _frames(2)
    roi = frames.max(axis=(0, 3)) > 0
    bead = bead_mask(frames[0], roi, PRESETS["tiny"])
    assert bead.any() and not (bead & ~roi).any()
    assert set(np.nonzero(bead)[1]) <= set(range(76, 84))  # the bright bead, not the paint's noise
    synth = synthetic_defects(frames, roi, PRESETS["tiny"], np.random.default_rng(0))
    assert len(synth) >= 15  # 2 images x 5 types x 2, less those with no place to fit
    for i, img, mask in synth:
        assert i in (0, 1) and mask.any() and not (mask & ~roi).any()
        assert not img[~roi].any()  # what a masked model is shown: nothing outside the ROI
        assert (img != frames[i]).any(axis=2)[mask].any()


def test_too_few_frames_and_frames_without_a_bead_are_clear_errors() -> None:
    with pytest.raises(TrainingError, match="at least 3"):
        train("seamseg", _frames(2), preset="tiny", ctx=FitContext(max_steps=1))
    flat = np.full((4, 120, 160, 3), 90, np.uint8)
    with pytest.raises(TrainingError, match="no sealant bead"):
        train("seamseg", flat, preset="tiny", ctx=FitContext(max_steps=1))
