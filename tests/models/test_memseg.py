"""MemSeg: the tiny preset fitted on twin frames, the model contract (shapes, save/load, ONNX parity),
a planted defect, and the parts on their own (memory matching, loss, anomaly simulation).

MemSeg compares each position with the same position of remembered normal images, so it expects
aligned views, as the paper's template-matched viewpoint regions are: the fit set is the shared
``aligned`` set (one view per vehicle at nearly the same conveyor travel), not ``small_set``, whose
frames are taken anywhere along the pass.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.models import ConfigError, FitContext, calibrate, load_model, save, train
from pipeline.models.api import TrainedModel
from pipeline.models.memseg import PRESETS, Memory, MemSegNet
from pipeline.models.memseg_fit import focal_loss, lr_at, memseg_loss
from pipeline.models.perlin import SimulationConfig, foreground_mask, perlin_2d, simulate_anomaly
from pipeline.models.registry import make_config
from tests.models.conftest import SmallSet

FIT_S: dict[str, float] = {}


@pytest.fixture(scope="module")
def memseg(aligned: SmallSet) -> TrainedModel:
    t0 = time.perf_counter()
    model = train("memseg", aligned.train, preset="tiny", ctx=FitContext(seed=0))
    FIT_S["tiny"] = time.perf_counter() - t0
    return model


@pytest.fixture(scope="module")
def artifact(memseg: TrainedModel, aligned: SmallSet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    val = np.concatenate([aligned.normal_test, aligned.defect])
    masks = np.concatenate([np.zeros(aligned.normal_test.shape[:3], bool), aligned.defect_mask])
    d = tmp_path_factory.mktemp("memseg")
    save(calibrate(memseg, val, masks), d, parity_images=val[-2:])
    return d


def test_predict_gives_probability_maps_at_input_resolution(memseg: TrainedModel, aligned: SmallSet) -> None:
    pred = memseg.predict(aligned.normal_test[:2])
    assert pred.scores.shape == (2,) and pred.scores.dtype == np.float32
    assert pred.maps.shape == (2, 240, 320) and pred.maps.dtype == np.float32
    assert pred.maps.min() >= 0.0 and pred.maps.max() <= 1.0  # softmax "anomalous" probability
    assert memseg.predict(aligned.normal_test[:1, ::2, ::2]).maps.shape == (1, 120, 160)


def test_planted_defect_scores_above_every_normal_frame(memseg: TrainedModel, aligned: SmallSet) -> None:
    normal = memseg.predict(aligned.normal_test).scores
    pred = memseg.predict(aligned.defect)
    # measured with the tiny preset on this set for seeds 0, 1, 2: defect 0.37 / 0.92 / 0.93 against a
    # highest normal score of 0.18 / 0.33 / 0.31 (margins 0.19 to 0.62); 0.1 leaves room for the
    # run-to-run drift of a short training on another machine while still demanding clear separation
    assert pred.scores[0] > normal.max() + 0.1, (pred.scores, normal)
    peak = np.unravel_index(int(np.argmax(pred.maps[0])), pred.maps[0].shape)
    near = np.zeros_like(aligned.defect_mask[0])
    ys, xs = np.nonzero(aligned.defect_mask[0])
    # one input pixel of the 96x72 network is 3.3 frame pixels and the map is upsampled bilinearly;
    # measured peaks fell 0 to 7 px outside the blob (seeds 0..2)
    pad = 10
    near[max(0, ys.min() - pad): ys.max() + pad + 1, max(0, xs.min() - pad): xs.max() + pad + 1] = True
    assert near[peak], f"map peak {peak} is not at the planted defect"


def test_artifact_round_trip_keeps_maps_on_onnx_and_torch(memseg: TrainedModel, artifact: Path,
                                                          aligned: SmallSet) -> None:
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["model"] == "memseg" and manifest["preset"] == "tiny"
    assert manifest["onnx"]["parity_error"] <= manifest["onnx"]["parity_tolerance"]
    batch = np.concatenate([aligned.normal_test[:1], aligned.defect])
    ref = memseg.predict(batch)
    for runtime in ("onnx", "torch"):
        got = load_model(artifact, runtime=runtime).predict(batch)
        np.testing.assert_allclose(got.scores, ref.scores, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(got.maps, ref.maps, rtol=1e-3, atol=1e-3)
        assert got.labels is not None and bool(got.labels[1])  # the calibrated threshold flags the defect


def test_fit_time_of_the_tiny_preset_is_recorded(memseg: TrainedModel) -> None:
    assert memseg.training["n_images"] == 8 and memseg.training["fit_s"] > 0
    print(f"memseg tiny fit: {FIT_S.get('tiny', float('nan')):.1f} s")  # visible with -s


def test_memory_picks_the_nearest_entry_per_position_or_per_image() -> None:
    cfg = dataclasses.replace(PRESETS["tiny"], input_size_wh=(64, 32), memory_size=2)
    g = torch.Generator().manual_seed(0)
    for match, left_right_zero in (("position", True), ("image", False)):
        mem = Memory(dataclasses.replace(cfg, memory_match=match))
        banks = mem.banks()
        for b in banks:
            b.copy_(torch.randn(b.shape, generator=g))
        # an input whose left half is memory entry 0 and whose right half is entry 1
        feats = []
        for b in banks:
            f = b[0:1].clone()
            half = f.shape[-1] // 2
            f[..., half:] = b[1:2, ..., half:]
            feats.append(f)
        out = mem(tuple(feats))
        for f, o in zip(feats, out, strict=True):
            c = f.shape[1]
            assert torch.equal(o[:, :c], f)
            diff_zero = bool((o[:, c:] == 0).all())
            assert diff_zero == left_right_zero, match
        exact = mem(tuple(b[1:2] for b in banks))
        assert all(bool((o[:, o.shape[1] // 2:] == 0).all()) for o in exact)


def test_focal_and_l1_loss() -> None:
    logits = torch.randn(2, 2, 8, 8, generator=torch.Generator().manual_seed(1))
    target = (torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(2)) > 0.7).float()
    ce = torch.nn.functional.cross_entropy(logits, target.long())
    assert torch.allclose(focal_loss(logits, target, 0.0), ce)  # γ = 0 is cross-entropy
    assert focal_loss(logits, target, 4.0) < ce                   # γ > 0 down-weights easy pixels
    perfect = torch.stack([(1 - target) * 20 - 10, target * 20 - 10], dim=1)
    assert float(memseg_loss(perfect, target, PRESETS["paper"])) < 1e-4
    paper = PRESETS["paper"]
    assert lr_at(0, 100, paper) < lr_at(19, 100, paper) == pytest.approx(paper.lr)
    assert lr_at(99, 100, paper) == pytest.approx(paper.min_lr, rel=0.05)


def test_anomaly_simulation_is_seeded_and_confined_to_its_mask(aligned: SmallSet) -> None:
    img = aligned.train[0]
    cfg = SimulationConfig(texture_prob=0.5)
    a = simulate_anomaly(img, cfg, np.random.default_rng(3), others=aligned.train)
    b = simulate_anomaly(img, cfg, np.random.default_rng(3), others=aligned.train)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    for seed in range(6):
        out, mask = simulate_anomaly(img, cfg, np.random.default_rng(seed), others=aligned.train)
        changed = np.any(out != img, axis=2)
        assert mask.any() and not (changed & (mask == 0)).any()
        assert not (mask.astype(bool) & ~foreground_mask(img, cfg.foreground)).any()
    noise = perlin_2d((50, 70), (4, 3), np.random.default_rng(0))
    assert noise.shape == (50, 70) and -1.5 < noise.min() < 0 < noise.max() < 1.5


def test_paper_preset_follows_table_3_and_runs() -> None:
    p = make_config("memseg", "paper")
    assert (p.input_size_wh, p.memory_size, p.steps, p.batch_size) == ((256, 256), 30, 15000, 8)
    assert (p.lr, p.weight_decay, p.min_lr, p.warmup_ratio) == (0.003, 5e-4, 1e-4, 0.2)
    assert (p.focal_weight, p.l1_weight, p.focal_gamma) == (0.7, 0.3, 4.0)
    assert (p.grid_size, p.transparency_range, p.texture_prob) == (8, (0.8, 1.0), 0.9)
    assert (p.perlin_scale, p.perlin_scale_min, p.perlin_threshold) == (5, 3, 0.5)
    net = MemSegNet(dataclasses.replace(p, memory_size=2)).eval()
    with torch.no_grad():
        scores, maps = net(torch.full((1, 3, 256, 256), 128.0))
    assert scores.shape == (1,) and maps.shape == (1, 1, 256, 256)


def test_bad_options_are_config_errors(aligned: SmallSet) -> None:
    with pytest.raises(ConfigError, match="memory_match"):
        train("memseg", aligned.train[:1], preset="tiny", memory_match="nearest")
    with pytest.raises(ConfigError, match="too small"):
        train("memseg", aligned.train[:1], preset="tiny", input_size_wh=(16, 16))
