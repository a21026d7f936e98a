"""The model contract on real parts: train, calibrate, save (weights + ONNX + manifest), load with
PyTorch and ONNX Runtime, and clear errors for bad input and damaged artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.models import (
    ArtifactError,
    ConfigError,
    FitContext,
    InputError,
    calibrate,
    load_model,
    make_config,
    save,
    train,
)
from pipeline.models.api import TrainedModel
from pipeline.models.registry import parse_options
from tests.models.conftest import SmallSet


@pytest.fixture(scope="module")
def patchcore(small_set: SmallSet) -> TrainedModel:
    model = train("patchcore", small_set.train, preset="tiny", ctx=FitContext(seed=0))
    val = np.concatenate([small_set.normal_test, small_set.defect])
    masks = np.concatenate([np.zeros(small_set.normal_test.shape[:3], bool), small_set.defect_mask])
    return calibrate(model, val, masks)


@pytest.fixture(scope="module")
def artifact(patchcore: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("patchcore")
    save(patchcore, d)
    return d


def test_predict_returns_scores_and_maps_at_input_resolution(patchcore: TrainedModel, small_set: SmallSet) -> None:
    batch = small_set.normal_test[:2]
    pred = patchcore.predict(batch)
    assert pred.scores.shape == (2,) and pred.scores.dtype == np.float32
    assert pred.maps.shape == (2, 240, 320) and pred.maps.dtype == np.float32
    assert pred.maps_norm is not None and pred.maps_norm.min() >= 0.0 and pred.maps_norm.max() <= 1.0
    small = patchcore.predict(batch[:, ::2, ::2])  # any input size; maps follow the caller's resolution
    assert small.maps.shape == (2, 120, 160)


@pytest.mark.parametrize("bad", [np.zeros((2, 240, 320), np.uint8), np.zeros((2, 240, 320, 3), np.float32),
                                 np.zeros((0, 240, 320, 3), np.uint8), "not an array"])
def test_bad_batches_raise_input_error(patchcore: TrainedModel, bad: object) -> None:
    with pytest.raises(InputError):
        patchcore.predict(bad)


def test_unknown_model_or_preset_is_a_config_error(small_set: SmallSet) -> None:
    with pytest.raises(ConfigError, match="unknown model 'patchkore'"):
        train("patchkore", small_set.train)
    with pytest.raises(ConfigError, match="preset"):
        train("patchcore", small_set.train, preset="huge")


def test_options_parse_as_literals_and_must_match_the_option_type() -> None:
    opts = parse_options(["steps=3000", "lr=0.001", " input_size_wh = [320, 240]", "draw_on_frames=True"])
    assert opts == {"steps": 3000, "lr": 0.001, "input_size_wh": (320, 240), "draw_on_frames": True}
    cfg = make_config("seamseg", "tiny", **opts)
    assert (cfg.steps, cfg.lr, cfg.input_size_wh, cfg.draw_on_frames) == (3000, 0.001, (320, 240), True)
    min_var = make_config("seamseg", "tiny", min_var=30).min_var  # an int where a float is expected
    assert min_var == 30.0 and isinstance(min_var, float)
    assert make_config("patchcore", "tiny", embed_dim=64).embed_dim == 64  # an optional option
    for bad, says in (("steps", "write OPTION=VALUE"), ("=3", "write OPTION=VALUE"),
                      ("steps=three", "not a Python literal")):
        with pytest.raises(ConfigError, match=says):
            parse_options([bad])
    for option, value in (("steps", 3000.5), ("steps", True), ("draw_on_frames", 1), ("lr", "0.1"),
                          ("input_size_wh", 320)):
        with pytest.raises(ConfigError, match=f"option {option} takes type"):
            make_config("seamseg", "tiny", **{option: value})


def test_onnx_and_torch_artifacts_agree_with_the_trained_model(patchcore: TrainedModel, artifact: Path,
                                                               small_set: SmallSet) -> None:
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["model"] == "patchcore" and manifest["calibration"] is not None
    assert len(manifest["training"]["data_sha256"]) == 64
    batch = np.concatenate([small_set.normal_test[:1], small_set.defect])
    ref = patchcore.predict(batch)
    for runtime in ("onnx", "torch"):
        got = load_model(artifact, runtime=runtime).predict(batch)
        np.testing.assert_allclose(got.scores, ref.scores, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(got.maps, ref.maps, rtol=1e-3, atol=1e-3)
        assert got.maps_norm is not None and ref.maps_norm is not None
        np.testing.assert_allclose(got.maps_norm, ref.maps_norm, atol=1e-3)


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_damaged_artifacts_give_clear_errors(artifact: Path, tmp_path: Path) -> None:
    truncated = _copy(artifact, tmp_path / "truncated")
    onnx = truncated / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:1000])
    with pytest.raises(ArtifactError, match=r"model\.onnx is corrupt or was changed"):
        load_model(truncated, runtime="onnx")

    missing = _copy(artifact, tmp_path / "missing")
    (missing / "model.onnx").unlink()
    with pytest.raises(ArtifactError, match=r"model\.onnx is missing"):
        load_model(missing, runtime="onnx")

    bad_json = _copy(artifact, tmp_path / "bad_json")
    (bad_json / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_model(bad_json)

    other_version = _copy(artifact, tmp_path / "version")
    doc = json.loads((other_version / "manifest.json").read_text())
    doc["model_version"] = "99.0"
    (other_version / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match=r"version 99\.0"):
        load_model(other_version, runtime="torch")

    with pytest.raises(ArtifactError, match="does not exist"):
        load_model(tmp_path / "nowhere")
