"""``xrserver train | eval | export`` as an integrator runs them on an MVTec-layout folder (synthetic
views with seam ROI masks), masked and unmasked, and the one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.models.test_preprocess import synthetic_view
from xrserver.cli import main


def _write(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train/good (6), test/good (4), test/missing (4) with GT masks, and roi/<split>/<type>/ seam masks."""
    root = tmp_path_factory.mktemp("mvtec") / "view"
    view = synthetic_view(14, seed=3)
    rng = np.random.default_rng(0)
    for i in range(14):
        rgb, seams = view.frames[i].copy(), view.seams[i]
        if i < 6:
            split, kind = "train", "good"
        elif i < 10:
            split, kind = "test", "good"
        else:
            split, kind = "test", "missing"
            ys, xs = np.nonzero(seams[8:-8, 8:-8])
            k = int(rng.integers(len(ys)))
            mask = np.zeros(seams.shape, np.uint8)
            cv2.circle(mask, (int(xs[k]) + 8, int(ys[k]) + 8), 5, 255, -1)
            rgb[mask > 0] = (25, 25, 30)
            _write(root / "ground_truth" / kind / f"{i:03d}_mask.png", mask)
        _write(root / split / kind / f"{i:03d}.png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        _write(root / "roi" / split / kind / f"{i:03d}.png", seams.astype(np.uint8) * 255)
    return root


@pytest.fixture(scope="module")
def artifact(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    out = tmp_path_factory.mktemp("art")
    art, js = out / "patchcore-view", out / "train.json"
    assert main(["train", "--model", "patchcore", "--preset", "tiny", "--data", str(folder), "--out", str(art),
                 "--roi", "--roi-margin", "4", "--template", "--json", str(js)]) == 0
    return art, json.loads(js.read_text())


def test_train_then_eval_a_masked_artifact(artifact: tuple[Path, dict[str, object]], folder: Path,
                                           tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    art, result = artifact
    manifest = json.loads((art / "manifest.json").read_text())
    pre = manifest["preprocess"]
    assert pre["config"]["roi"] and pre["config"]["template"] and pre["config"]["roi_margin_px"] == 4
    assert {"template.png", "roi.png", "model.onnx"} <= set(manifest["files"])
    assert manifest["metrics"]["test"] == result["metrics"] and manifest["calibration"] is not None
    assert main(["eval", "--artifact", str(art), "--data", str(folder), "--json", str(tmp_path / "eval.json"),
                 "--report", str(tmp_path / "report")]) == 0
    ev = json.loads((tmp_path / "eval.json").read_text())
    lo, hi = ev["metrics"]["image"]["auroc_ci95"]  # how far the test set alone could move the AUROC
    assert 0.0 <= lo <= ev["metrics"]["image"]["auroc"] <= hi <= 1.0
    for name in ("roc_pr", "heatmaps", "misclassified"):  # the paper's figures, as real PNG images
        png = cv2.imread(ev["metrics"]["figures"][name])
        assert png is not None and png.shape[0] > 200 and png.shape[1] > 600 and png.std() > 10
    tertiles = ev["metrics"]["fn_tertiles"]
    assert sum(tertiles["n"]) == ev["metrics"]["n_anomalous"] and 0 <= sum(tertiles["fn"]) <= sum(tertiles["n"])
    # with template matching the ROI is the reference frame's, moved with the match, as a served model masks
    assert ev["preprocess"] == {"roi": True, "template": True, "photometric": False, "contrast": False,
                                "roi_source": "reference"}
    assert result["roi_source"] == "reference"
    assert ev["metrics"]["n_rejected"] == 0
    per_image = ev["metrics"]["per_image"]  # which frames scored what: the folder's file stems, in order
    assert len(per_image["names"]) == len(per_image["scores"]) == ev["metrics"]["n_images"]
    assert set(per_image["types"]) == {"good", "missing"} and "per_image" not in manifest["metrics"]["test"]
    assert list(ev["metrics"]["image_auroc_by_type"]) == ["missing"]  # the folder's one defect type
    assert ev["metrics"]["image_auroc_by_type"]["missing"] == pytest.approx(ev["metrics"]["image"]["auroc"])
    assert ev["metrics"]["image"]["auroc"] == pytest.approx(result["metrics"]["image"]["auroc"], abs=1e-6)  # type: ignore[index]
    assert ev["metrics"]["pixel"]["auroc"] > 0.5
    out = capsys.readouterr().out
    assert "image AUROC" in out and "missed by defect size" in out and "figure heatmaps:" in out
    assert f"(95% bootstrap interval over the test images {lo:.3f}-{hi:.3f})" in out
    assert "image AUROC by defect type: missing" in out and "maps peaking inside the defect, by type: missing" in out
    assert 0.0 <= ev["metrics"]["peak_in_defect_by_type"]["missing"] <= 1.0
    # each frame's own masks from roi/, on request
    assert main(["eval", "--artifact", str(art), "--data", str(folder), "--roi-source", "frame",
                 "--json", str(tmp_path / "frame.json")]) == 0
    own = json.loads((tmp_path / "frame.json").read_text())
    assert own["preprocess"]["roi_source"] == "frame" and own["metrics"]["n_images"] == ev["metrics"]["n_images"]


def test_models_group_trains_unmasked_for_comparison(folder: Path, tmp_path: Path) -> None:
    art = tmp_path / "unmasked"
    assert main(["models", "train", "--model", "gaussian", "--data", str(folder), "--out", str(art), "--no-roi",
                 "--no-template", "--json", str(tmp_path / "t.json")]) == 0
    pre = json.loads((tmp_path / "t.json").read_text())["preprocess"]["config"]
    assert not pre["roi"] and not pre["template"] and not (art / "roi.png").exists()
    assert main(["models", "eval", "--artifact", str(art), "--data", str(folder)]) == 0


def test_train_on_a_twin_viewpoint_with_the_photometric_and_contrast_steps(tmp_path: Path) -> None:
    art, js = tmp_path / "g", tmp_path / "t.json"
    assert main(["train", "--model", "gaussian", "--twin", "lower", "--twin-viewpoint", "centre", "--twin-size",
                 "160x120", "--twin-train-frames", "3", "--twin-val", "3", "1", "--twin-test", "2", "1",
                 "--photometric", "--contrast", "--roi", "--out", str(art), "--json", str(js)]) == 0
    result = json.loads(js.read_text())
    assert (result["metrics"]["n_images"], result["metrics"]["n_anomalous"]) == (2 + 5, 5), "2 normal, 1 per type"
    cfg = result["preprocess"]["config"]
    assert result["data"] == "twin:lower:centre" and cfg["photometric"] and cfg["contrast"]
    assert (cfg["contrast_kernel_px"], cfg["contrast_pool_px"]) == (3, 1)  # scaled to 160 px of width
    assert 0.0 <= result["metrics"]["pixel"]["auroc"] <= 1.0
    out = tmp_path / "e.json"
    assert main(["eval", "--artifact", str(art), "--twin", "lower", "--twin-viewpoint", "centre", "--twin-size",
                 "160x120", "--twin-train-frames", "3", "--no-photometric", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["preprocess"]["photometric"] is False
    assert json.loads(out.read_text())["preprocess"]["contrast"] is True


def test_train_sets_the_contrast_max_pool_and_refuses_a_bad_one_before_reading_data(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    js = tmp_path / "t.json"
    assert main(["train", "--model", "gaussian", "--twin", "lower", "--twin-viewpoint", "centre", "--twin-size",
                 "160x120", "--twin-train-frames", "3", "--contrast", "--contrast-pool", "3", "--roi",
                 "--out", str(tmp_path / "g"), "--json", str(js)]) == 0
    assert json.loads(js.read_text())["preprocess"]["config"]["contrast_pool_px"] == 3  # not the scaled 1 px
    capsys.readouterr()
    for bad, says in ((["--contrast-pool", "3"], "--contrast-pool needs --contrast"),
                      (["--contrast", "--contrast-pool", "2"], "must be odd")):
        assert main(["train", "--model", "gaussian", "--data", str(tmp_path / "absent"), "--out",
                     str(tmp_path / "x"), *bad]) == 2
        assert says in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # argparse's own check
        main(["train", "--model", "gaussian", "--twin", "lower", "--twin-val", "0", "1", "--out", str(tmp_path / "x")])
    assert e.value.code == 2 and "--twin-val: expected a positive integer, got 0" in capsys.readouterr().err


def test_train_sets_model_options_in_the_manifest_and_refuses_bad_ones_before_reading_data(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    art = tmp_path / "g"
    assert main(["train", "--model", "gaussian", "--twin", "lower", "--twin-viewpoint", "centre", "--twin-size",
                 "160x120", "--twin-train-frames", "3", "--set", "min_var=40", "blur_sigma_px=1.5",
                 "--input-size", "80x60", "--station-travel-m", "-0.02", "0.03", "--out", str(art)]) == 0
    manifest = json.loads((art / "manifest.json").read_text())
    assert manifest["training"]["station_travel_m"] == [-0.02, 0.03], "the user's station, not the twin's"
    config = manifest["config"]
    assert (config["min_var"], config["blur_sigma_px"]) == (40.0, 1.5)
    assert config["input_size_wh"] == manifest["input"]["size_wh"] == [80, 60]  # not the preset's 320x240
    # frames at twice the input or more: the user hears what that costs, and how to keep the detail
    assert "--input-size 160x120 keeps their detail" in caplog.text
    capsys.readouterr()
    for bad, says in ((["--set", "min_vars=40"], "has no option(s) ['min_vars']"),
                      (["--set", "min_var"], "write OPTION=VALUE"),
                      (["--set", "min_var=high"], "not a Python literal"),
                      (["--set", "input_size_wh=160"], "option input_size_wh takes type tuple"),
                      (["--set", "input_size_wh=(160, 120)", "--input-size", "160x120"], "give the input size once"),
                      (["--preset", "huge"], "has no preset 'huge'"),
                      (["--station-travel-m", "0.3", "0.2"], "--station-travel-m: MIN <= MAX")):
        assert main(["train", "--model", "gaussian", "--data", str(tmp_path / "absent"), "--out",
                     str(tmp_path / "x"), *bad]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and says in err, err


def test_pretrain_writes_backbone_weights_that_train_accepts(folder: Path, tmp_path: Path) -> None:
    weights, js = tmp_path / "ssl.pt", tmp_path / "p.json"
    assert main(["pretrain", "--data", str(folder), "--steps", "3", "--batch-size", "4", "--crop", "32",
                 "--out", str(weights), "--json", str(js)]) == 0
    report = json.loads(js.read_text())
    assert report["steps"] == 3 and report["weights"] == str(weights) and report["loss_last"] > 0
    assert main(["train", "--model", "patchcore", "--data", str(folder), "--out", str(tmp_path / "pc"),
                 "--no-roi", "--backbone-weights", str(weights)]) == 0
    # a backbone for models that see the local contrast learns from the contrast images, not the colours
    on_contrast, js2 = tmp_path / "ssl-contrast.pt", tmp_path / "p2.json"
    assert main(["pretrain", "--data", str(folder), "--steps", "3", "--batch-size", "4", "--crop", "32",
                 "--contrast", "--out", str(on_contrast), "--json", str(js2)]) == 0
    assert not report["contrast"] and json.loads(js2.read_text())["contrast"]
    first, second = torch.load(weights), torch.load(on_contrast)
    assert first.keys() == second.keys()
    assert any(not torch.equal(first[k], second[k]) for k in first)  # same seed and steps, other inputs
    assert main(["train", "--model", "patchcore", "--data", str(folder), "--out", str(tmp_path / "pc2"),
                 "--no-roi", "--contrast", "--backbone-weights", str(on_contrast)]) == 0


def test_export_refreshes_or_writes_onnx_with_parity(artifact: tuple[Path, dict[str, object]], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    art, _ = artifact
    copy = _copy(art, tmp_path / "copy")
    assert main(["export", "--artifact", str(copy), "--json", str(tmp_path / "x.json")]) == 0
    rep = json.loads((tmp_path / "x.json").read_text())
    assert rep["manifest_refreshed"] and rep["parity_error"] <= rep["tolerance"] == 1e-3
    assert 0.0 <= rep["max_abs_diff"] < 0.1
    assert "max abs diff" in capsys.readouterr().out
    manifest = json.loads((copy / "manifest.json").read_text())
    assert manifest["onnx"]["parity_max_abs_diff"] == rep["max_abs_diff"]
    other = tmp_path / "elsewhere.onnx"
    assert main(["export", "--artifact", str(copy), "--out", str(other), "--json", str(tmp_path / "y.json")]) == 0
    assert other.stat().st_size > 1000 and not json.loads((tmp_path / "y.json").read_text())["manifest_refreshed"]


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_corrupt_onnx_is_a_clear_error_and_export_repairs_it(
        artifact: tuple[Path, dict[str, object]], folder: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    art = _copy(artifact[0], tmp_path / "broken")
    onnx = art / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:2000])
    assert main(["eval", "--artifact", str(art), "--data", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model.onnx is corrupt" in err
    assert main(["export", "--artifact", str(art)]) == 0
    assert main(["eval", "--artifact", str(art), "--data", str(folder)]) == 0
    weights = art / "weights.pt"  # export rebuilds from the weights, so those must be intact
    weights.write_bytes(weights.read_bytes()[:-100])
    capsys.readouterr()
    assert main(["export", "--artifact", str(art)]) == 2
    assert "weights.pt is corrupt" in capsys.readouterr().err


def test_bad_input_gives_one_line_and_exit_2(artifact: tuple[Path, dict[str, object]], folder: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    def fails(argv: list[str], needle: str) -> None:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err, err

    fails(["train", "--model", "patchcore", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "a")],
          "no train/good")
    assert not (tmp_path / "a").exists()
    fails(["eval", "--artifact", str(tmp_path / "missing"), "--data", str(folder)], "does not exist")
    (tmp_path / "a-file").write_text("not a folder")
    fails(["pretrain", "--data", str(folder), "--steps", "1", "--batch-size", "2", "--crop", "32",
           "--out", str(tmp_path / "a-file" / "w.pt")], "cannot write the weights")
    fails(["pretrain", "--data", str(folder), "--steps", "1", "--batch-size", "1", "--out", str(tmp_path / "w.pt")],
          "at least 2 crops")
    fails(["export", "--artifact", str(tmp_path / "missing")], "does not exist")
    bare = tmp_path / "bare"  # the same folder without roi/
    for f in folder.rglob("*.png"):
        rel = f.relative_to(folder)
        if rel.parts[0] != "roi":
            (bare / rel).parent.mkdir(parents=True, exist_ok=True)
            (bare / rel).write_bytes(f.read_bytes())
    fails(["train", "--model", "gaussian", "--data", str(bare), "--out", str(tmp_path / "b"), "--roi"],
          "--roi needs ROI masks")
    # without ROI masks in the data, eval (like serving) uses the artifact's reference ROI
    assert main(["eval", "--artifact", str(artifact[0]), "--data", str(bare), "--json", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["preprocess"]["roi_source"] == "reference"
    capsys.readouterr()
    fails(["eval", "--artifact", str(artifact[0]), "--data", str(bare), "--roi-source", "frame"],
          "needs per-frame ROI masks")
    assert main(["train", "--model", "gaussian", "--data", str(bare), "--out", str(tmp_path / "g")]) == 0
    capsys.readouterr()
    fails(["eval", "--artifact", str(tmp_path / "g"), "--data", str(bare), "--roi"], "trained without it")
    fails(["export", "--artifact", str(artifact[0]), "--out", str(tmp_path / "no" / "m.onnx")], "does not exist")
    with pytest.raises(SystemExit) as e:
        main(["train", "--model", "nosuch", "--data", str(folder), "--out", str(tmp_path / "c")])
    assert e.value.code == 2
