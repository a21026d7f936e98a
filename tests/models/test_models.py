"""Every model but MemSeg (its own file) on the same footing: the ``tiny`` preset fitted on aligned twin
frames scores a planted defect above every normal frame of unseen vehicles, its map peaks at the
defect, and its artifact survives a round trip with ONNX Runtime and PyTorch giving the trained
model's scores and maps.

EfficientAD-S trains its full ``tiny`` preset (150 steps, about 3 minutes here). EfficientAD-M, four
times slower per step, trains 10 steps only: enough for its contract and ONNX parity, not to find
the defect, so it is left out of the detection checks (its accuracy is a benchmark's job).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.models import FitContext, calibrate, load_model, save, train
from pipeline.models.api import TrainedModel
from tests.models.conftest import SmallSet

#: model → optimiser steps for the test fit (None: the preset's; PatchCore and the Gaussian do not train)
STEPS = {"gaussian": None, "patchcore": None, "simplenet": None, "efficientad-s": None, "efficientad-m": 10,
         "seamseg": 100}
#: the models expected to find the planted defect: those trained in full here, and SeamSeg, whose head
#: starts from the per-pixel Gaussian's score and corrects it (100 of its preset's 1500 steps here)
DETECTS = {name for name, steps in STEPS.items() if steps is None} | {"seamseg"}
#: how far (frame px) the map's peak may fall outside the 12 px blob: the patch-feature models see
#: 160x120 inputs through stride-8 features (one cell = 16 frame px), blurred and upsampled
PEAK_PAD_PX = {"gaussian": 4, "seamseg": 4, "patchcore": 16, "simplenet": 16, "efficientad-s": 16}


@pytest.fixture(scope="module", params=sorted(STEPS))
def fitted(request: pytest.FixtureRequest, aligned: SmallSet) -> TrainedModel:
    name: str = request.param
    return train(name, aligned.train, preset="tiny", ctx=FitContext(seed=0, max_steps=STEPS[name]))


def test_planted_defect_scores_above_every_normal_frame_and_the_map_peaks_there(
        fitted: TrainedModel, aligned: SmallSet) -> None:
    if fitted.name not in DETECTS:
        pytest.skip(f"{fitted.name} is trained for {STEPS[fitted.name]} steps only here")
    normal = fitted.predict(aligned.normal_test)
    pred = fitted.predict(aligned.defect)
    assert pred.maps.shape == (1, *aligned.defect.shape[1:3]) and pred.maps.dtype == np.float32
    assert pred.scores[0] > normal.scores.max(), (fitted.name, pred.scores, normal.scores)
    peak = np.unravel_index(int(np.argmax(pred.maps[0])), pred.maps[0].shape)
    ys, xs = np.nonzero(aligned.defect_mask[0])
    pad = PEAK_PAD_PX[fitted.name]
    assert ys.min() - pad <= peak[0] <= ys.max() + pad and xs.min() - pad <= peak[1] <= xs.max() + pad, \
        f"{fitted.name}: map peak {peak} is not at the planted defect"


def test_artifact_round_trip_keeps_scores_and_maps_on_onnx_and_torch(
        fitted: TrainedModel, aligned: SmallSet, tmp_path: Path) -> None:
    val = np.concatenate([aligned.normal_test, aligned.defect])
    masks = np.concatenate([np.zeros(aligned.normal_test.shape[:3], bool), aligned.defect_mask])
    save(calibrate(fitted, val, masks), tmp_path, parity_images=val[-2:])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["model"] == fitted.name and manifest["preset"] == "tiny"
    assert manifest["onnx"]["parity_error"] <= manifest["onnx"]["parity_tolerance"]
    ref = fitted.predict(val[-2:])
    for runtime in ("onnx", "torch"):
        got = load_model(tmp_path, runtime=runtime).predict(val[-2:])
        np.testing.assert_allclose(got.scores, ref.scores, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(got.maps, ref.maps, rtol=1e-3, atol=1e-3)
        assert got.labels is not None
        assert bool(got.labels[1]) or fitted.name not in DETECTS  # the calibrated threshold flags the defect
