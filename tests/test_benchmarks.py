"""The accuracy benchmarks run end to end, as docs/benchmarks.md shows them, on tiny sets.

Their figures are measured by hand on full-size sets; these runs only keep the scripts working.
"""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TINY_SETS = ("--size", "160x120", "--train-frames", "10", "--val", "2", "1", "--test", "3", "1")


def _proc(script: str, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def _run(script: str, *args: str, timeout: float = 900) -> str:
    proc = _proc(script, *args, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_model_accuracy_prints_the_papers_tables(tmp_path: Path) -> None:
    out = _run("model_accuracy.py", "--models", "gaussian", "patchcore", "--seeds", "0", "1", "--viewpoints",
               "centre", *TINY_SETS, "--json", str(tmp_path / "runs.json"), "--report", str(tmp_path / "report"))
    for table in ("Table 4", "Table 6", "Table 8"):
        assert table in out
    assert "| patchcore † |" in out and "| gaussian |" in out
    assert "Image AUROC by defect type" in out and "| model | missing | misalignment |" in out
    assert "Share of defect images whose map peaks inside the defect" in out
    assert "95% bootstrap interval over the test images (seed 0)" in out
    runs = json.loads((tmp_path / "runs.json").read_text())
    assert len(runs) == 2 * 2 * 2  # models x seeds x (unmasked, masked)
    assert all(0.0 <= r["pixel"]["auroc"] <= 1.0 and r["n_anomalous"] > 0 for r in runs)
    assert all(lo <= r["image"]["auroc"] <= hi for r in runs for lo, hi in [r["image"]["auroc_ci95"]])
    types = {"missing", "misalignment", "bifurcation", "narrowing", "hole"}
    assert all(len(r["image_auroc_by_type"]) >= 3 and set(r["image_auroc_by_type"]) <= types for r in runs)
    assert all(set(r["peak_in_defect_by_type"]) == set(r["image_auroc_by_type"]) for r in runs)
    assert all(0.0 <= v <= 1.0 for r in runs for v in r["peak_in_defect_by_type"].values())
    assert len({r["n_images"] + r["n_rejected"] for r in runs}) == 1  # one test set for every model and seed
    assert list((tmp_path / "report").rglob("*.png"))
    assert all(r["settings"]["size"] == "160x120" and r["settings"]["contrast"] is False for r in runs)

    # seeds measured in separate runs: the saved runs, one file per seed, give the same tables
    for seed in (0, 1):
        (tmp_path / f"seed{seed}.json").write_text(json.dumps([r for r in runs if r["seed"] == seed]))
    per_seed = [str(tmp_path / f"seed{seed}.json") for seed in (0, 1)]
    merged = _run("model_accuracy.py", "--from-json", *per_seed)
    assert merged.startswith("tables from 8 saved runs") and "size 160x120" in merged
    assert merged[merged.index("Table 4"):] == out[out.index("Table 4"):]  # the intervals too
    assert "Paired t-tests of pixel AUROC over seeds †" in merged

    def refused(*files: str) -> str:
        proc = _proc("model_accuracy.py", "--from-json", *files, timeout=120)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        return proc.stderr

    assert "is in both" in refused(per_seed[0], per_seed[0])
    other = [{**r, "settings": {**r["settings"], "contrast": True}} for r in runs if r["seed"] == 1]
    (tmp_path / "other.json").write_text(json.dumps(other))
    assert "other settings: contrast" in refused(per_seed[0], str(tmp_path / "other.json"))
    (tmp_path / "short.json").write_text(json.dumps([r for r in runs if r["seed"] == 1 and r["model"] == "gaussian"]))
    assert "different seeds" in refused(per_seed[0], str(tmp_path / "short.json"))
    (tmp_path / "front.json").write_text(json.dumps([{**r, "viewpoint": "front"} for r in runs if r["seed"] == 1]))
    assert "different viewpoints" in refused(per_seed[0], str(tmp_path / "front.json"))
    (tmp_path / "broken.json").write_text("[{")
    assert "cannot read saved runs" in refused(str(tmp_path / "broken.json"))


def test_model_accuracy_runs_one_mask_setting_with_the_contrast_step_and_a_model_option_and_compares_runs(
        tmp_path: Path) -> None:
    out = _run("model_accuracy.py", "--models", "gaussian", "--seeds", "0", "--viewpoints", "centre", *TINY_SETS,
               "--masking", "on", "--contrast", "--set", "gaussian.blur_sigma_px=1.5",
               "--json", str(tmp_path / "r.json"))
    assert "| gaussian † |" in out and "| gaussian |" not in out
    assert "local contrast on" in out and "options gaussian.blur_sigma_px=1.5;" in out
    (run,) = json.loads((tmp_path / "r.json").read_text())
    assert run["config"]["blur_sigma_px"] == 1.5 and run["settings"]["options"] == ["gaussian.blur_sigma_px=1.5"]
    assert len(run["per_image"]["scores"]) == run["n_images"] and run["per_image"]["types"].count("good") == 3

    # a variant on the same test frames, against this run: the paired interval of the AUROC difference
    _run("model_accuracy.py", "--models", "gaussian", "--seeds", "0", "--viewpoints", "centre", *TINY_SETS,
         "--masking", "on", "--contrast", "--contrast-pool", "1", "--set", "gaussian.blur_sigma_px=1.5",
         "--json", str(tmp_path / "pool1.json"))
    (pool1,) = json.loads((tmp_path / "pool1.json").read_text())
    table = _run("model_accuracy.py", "--compare", str(tmp_path / "r.json"), str(tmp_path / "pool1.json"))
    assert "contrast_pool None → 1" in table.splitlines()[0]
    (row,) = [line for line in table.splitlines() if line.startswith("| gaussian † | centre | 0 |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3:5] == [f"{run['image']['auroc']:.3f}", f"{pool1['image']['auroc']:.3f}"]
    assert cells[5] == f"{pool1['image']['auroc'] - run['image']['auroc']:+.3f}" and cells[7] in ("yes", "no")
    assert pool1["preprocess"]["contrast"] and pool1["preprocess"]["contrast_pool_px"] == 1
    # several files a side (one per viewpoint): each viewpoint's row, then their mean with its own interval;
    # a run whose model fitted another max-pool by default (recorded as fitted) is named in the first line
    pooled3 = {**run, "viewpoint": "back", "preprocess": {**run["preprocess"], "contrast_pool_px": 3}}
    (tmp_path / "r_back.json").write_text(json.dumps([pooled3]))
    (tmp_path / "pool1_back.json").write_text(json.dumps([{**pool1, "viewpoint": "back"}]))
    table = _run("model_accuracy.py", "--compare", str(tmp_path / "r.json"), str(tmp_path / "r_back.json"),
                 "--against", str(tmp_path / "pool1.json"), str(tmp_path / "pool1_back.json"))
    assert table.splitlines()[0].count("gaussian contrast_pool_px 3 → 1") == 1, table.splitlines()[0]
    rows = {line.split("|")[2].strip(): [c.strip() for c in line.strip("|").split("|")]
            for line in table.splitlines() if line.startswith("| gaussian † |")}
    assert list(rows) == ["centre", "back", "mean of centre, back"]
    assert rows["mean of centre, back"][3:6] == cells[3:6], "the same runs twice: the mean is each one's"
    for bad in (["--compare", str(tmp_path / "r.json")], ["--against", str(tmp_path / "r.json")]):
        proc = _proc("model_accuracy.py", *bad, timeout=120)
        assert proc.returncode != 0 and ("--compare" in proc.stderr) and "Traceback" not in proc.stderr
    # more training frames of other vehicles: the same validation and test frames, so the runs pair
    more = _run("model_accuracy.py", "--models", "gaussian", "--seeds", "0", "--viewpoints", "centre", *TINY_SETS,
                "--masking", "on", "--contrast", "--set", "gaussian.blur_sigma_px=1.5", "--extra-train", "4",
                "--json", str(tmp_path / "more.json"))
    assert "14 training frames" in more
    (with_more,) = json.loads((tmp_path / "more.json").read_text())
    assert with_more["per_image"]["types"] == run["per_image"]["types"] and with_more["settings"]["extra_train"] == 4
    table = _run("model_accuracy.py", "--compare", str(tmp_path / "r.json"), str(tmp_path / "more.json"))
    assert "extra_train 0 → 4" in table.splitlines()[0]
    (tmp_path / "before.json").write_text(json.dumps([{**run, "settings": {
        k: v for k, v in run["settings"].items() if k != "extra_train"}}]))  # saved before the option existed
    table = _run("model_accuracy.py", "--compare", str(tmp_path / "before.json"), str(tmp_path / "r.json"))
    assert table.splitlines()[0].endswith("the same settings"), table.splitlines()[0]
    (tmp_path / "old.json").write_text(json.dumps([{k: v for k, v in run.items() if k != "per_image"}]))
    (tmp_path / "bigger.json").write_text(json.dumps([{**run, "settings": {**run["settings"], "test": [6, 2]}}]))
    for other, says in (("old.json", "saved before the per-image scores"), ("bigger.json", "differ in test")):
        proc = _proc("model_accuracy.py", "--compare", str(tmp_path / "r.json"), str(tmp_path / other), timeout=120)
        assert proc.returncode != 0 and says in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]

    for bad, says in ((["--set", "gaussian.blur=1"], "has no option(s) ['blur']"),
                      (["--set", "gaussian=1"], "write MODEL.OPTION=VALUE"),
                      (["--set", "gaussian.min_var=x"], "not a Python literal"),
                      (["--contrast-pool", "1"], "needs --contrast"),
                      (["--contrast", "--contrast-pool", "2"], "must be odd"),
                      (["--extra-train", "-1"], "expected an integer >= 0"),
                      (["--input-size", "640"], "expected WIDTHxHEIGHT")):
        proc = _proc("model_accuracy.py", "--models", "gaussian", *bad, timeout=120)
        assert proc.returncode != 0 and says in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]


def test_preprocess_speed_times_each_step_against_its_baseline() -> None:
    out = _run("preprocess_speed.py", "--sizes", "160x120", "--frames", "1", "--repeats", "1")
    rows = [line for line in out.splitlines() if line.startswith("| 160x120 |")]
    assert len(rows) == 4 and all("| 3 / 1 |" in r for r in rows)
    assert "x vs local contrast, exact median |" in rows[1] and "x vs preprocess |" in rows[3]


def test_metric_memory_measures_each_pixel_metric_against_one_roc_curve() -> None:
    out = _run("metric_memory.py", "--frames", "4", "--size", "64x48", "--roi-share", "0.25", timeout=300)
    rows = {line.split(" | ")[0]: line for line in out.splitlines() if line.startswith("| ")}
    assert list(rows)[1:] == ["| roc_auc_score (baseline)", "| aupro", "| pixel_metrics"]
    assert rows["| roc_auc_score (baseline)"].endswith("| 1.00x | 1.00x |")
    assert "4 maps of 64x48 (0 M pixels, float32, ROI 25% of the rows)" in out
    proc = _proc("metric_memory.py", "--roi-share", "0")
    assert proc.returncode == 2 and "--roi-share must be in (0, 1]" in proc.stderr


def test_backbone_study_compares_against_the_random_trunk(tmp_path: Path) -> None:
    out = _run("backbone_study.py", "--models", "patchcore", "--seeds", "0", "--ssl-steps", "2", *TINY_SETS,
               "--json", str(tmp_path / "rows.json"))
    assert "| patchcore, random trunk |" in out and "| patchcore, SimCLR trunk |" in out
    assert "1.00x | 1.00x |" in out  # the random trunk is the baseline of its own run
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert [r["variant"] for r in rows] == ["patchcore, random trunk", "patchcore, SimCLR trunk"]


def test_twin_ceiling_scores_the_test_frames_against_their_own_vehicles_and_the_nearest_training_frame(
        tmp_path: Path) -> None:
    out = _run("twin_ceiling.py", *TINY_SETS, "--viewpoints", "front", "centre", "--json", str(tmp_path / "c.json"))
    for vp in ("front", "centre"):
        assert f"| {vp} | nearest training frame (baseline) |" in out and f"| {vp} | golden: the vehicle" in out
    runs = json.loads((tmp_path / "c.json").read_text())
    assert [r["viewpoint"] for r in runs] == ["front", "centre"]
    for r in runs:
        good = [i for i, t in enumerate(r["types"]) if t == "good"]
        assert len(good) == 3 and len(r["types"]) == 8 and len(r["footprint"]) == 5
        golden, nearest = r["scores"]["golden"], r["scores"]["nearest"]
        assert all(golden[i] < nearest[i] for i in good), "a normal frame differs from its own vehicle by noise alone"
        changed = {f["type"]: f["changed_px"] for f in r["footprint"]}
        assert changed["misalignment"] > 0 and changed["bifurcation"] > 0, changed  # 160x120 may hide the rest
    proc = _proc("twin_ceiling.py", "--test", "0", "1", timeout=60)
    assert proc.returncode == 2 and "at least 1" in proc.stderr and "Traceback" not in proc.stderr


def test_bead_profile_scores_each_seam_against_itself_and_fuses_with_a_models_run(tmp_path: Path) -> None:
    runs = tmp_path / "runs.json"
    _run("model_accuracy.py", "--models", "gaussian", "--seeds", "0", "--masking", "on", "--viewpoints", "front",
         *TINY_SETS[2:], "--size", "320x240", "--json", str(runs))
    out = _run("bead_profile.py", *TINY_SETS, "--render-size", "320x240", "--viewpoints", "front", "--fuse", str(runs),
               "--json", str(tmp_path / "p.json"))
    assert "(rendered at 320x240, area-averaged)" in out
    for row in ("| front | bead profile |", "| front | gaussian † (seed 0) |", "| front | gaussian † (seed 0) + bead"):
        assert row in out
    assert "| front | gaussian † (seed 0) | " in out.split("fused against the model alone")[1]
    (run,) = json.loads((tmp_path / "p.json").read_text())
    assert run["names"] == json.loads(runs.read_text())[0]["per_image"]["names"], "the same frames as the model's run"
    assert len(run["scores"]) == 8 and all(s >= 0 for s in run["scores"])
    proc = _proc("bead_profile.py", "--size", "160x120", "--render-size", "200x120", timeout=60)
    assert proc.returncode == 2 and "same proportions" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / "bad.json").write_text("{not json")
    proc = _proc("bead_profile.py", "--fuse", str(tmp_path / "bad.json"), timeout=60)
    assert proc.returncode == 2 and "--fuse: cannot read" in proc.stderr and "Traceback" not in proc.stderr


def test_bead_profile_finds_a_gap_and_a_narrowing_where_they_are() -> None:
    """A bead 3 px wide along a straight seam, on noisy paint: a 6 px gap and a 30 px stretch 1 px wide stand
    out of the profile where they are, and the rest of the seam scores as the bead without them."""
    bp = runpy.run_path(str(ROOT / "benchmarks" / "bead_profile.py"))
    rng = np.random.default_rng(0)
    frame = np.clip(rng.normal(90.0, 3.0, (120, 400, 3)), 0, 255).astype(np.uint8)
    clean = frame.copy()
    clean[59:62, 20:380] = 200
    defective = clean.copy()
    defective[59:62, 100:106] = frame[59:62, 100:106]  # a gap
    defective[59:62, 250:280] = frame[59:62, 250:280]
    defective[60, 250:280] = 200  # a narrowing
    x = np.arange(30.0, 370.0)
    path = (0, np.stack([x, np.full_like(x, 60.0)], -1), np.tile([0.0, 1.0], (len(x), 1)), x / 1000)
    before, after = (bp["strips"](im, [path], 61, 4)[0].energy for im in (clean, defective))
    gap, narrow = after[60:86], after[210:260]  # steps 70-75 and 220-249, each with 10 either side
    quiet = np.r_[before[:60], before[86:210], before[260:]]
    assert 68 <= 60 + int(np.argmax(gap)) <= 77 and 218 <= 210 + int(np.argmax(narrow)) <= 251
    assert min(gap.max(), narrow.max()) > 10 * quiet.max(), "each stands far above the bead's own noise"
    assert np.array_equal(after[:30], before[:30]), "a defect moves no step beyond the running median's reach"


def test_fusion_eval_measures_the_served_models_beside_the_golden_reference(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    out = _run("fusion_eval.py", "--vehicles", "1", "--step-m", "0.5", "--lut-step-m", "0.5", "--width", "160",
               "--height", "120", "--detector", "refdiff", "served:gaussian:tiny", "served:travel-gaussian",
               "travel-bank:2:5", "--cache", str(cache), "--budgets", "1", "--out", str(tmp_path / "report.json"))
    assert "| refdiff | all views, weighted |" in out and "| served:gaussian:tiny | lower alone |" in out
    report = json.loads((tmp_path / "report.json").read_text())
    assert list(report["results"]) == ["refdiff", "served:gaussian:tiny", "served:travel-gaussian", "travel-bank:2:5"]
    assert set(report["detect_ms_per_frame_set"]) == set(report["results"])
    assert all(len(rows) == 7 for rows in report["results"].values())  # 3 fusion modes + each of 4 views alone
    best = report["results"]["refdiff"]["all views, weighted"]["at_budget"]["1.0"]
    assert best is not None and best["recall"] >= 0.5, "the golden reference finds the planted defects"
    # the served models and visibility tables land in the server's cache layout, so `xrserver serve` reuses them
    assert len(list(cache.glob("models/gaussian-tiny-*/*/model.onnx"))) == 4
    assert len(list(cache.glob("models/travel-gaussian-*/*/bank.npz"))) == 4
    # each served model is also scored at the fused threshold the server would use; a travel bank's is fitted
    # on normal passes and cached beside the banks
    assert "at the served threshold" in out
    served = {d: r["all views, weighted"]["at_served"] for d, r in report["results"].items()}
    assert served["refdiff"] is None and served["served:gaussian:tiny"]["threshold"] == 0.5
    fitted = json.loads(next(cache.glob("models/travel-gaussian-*/fused-threshold-*.json")).read_text())
    assert served["served:travel-gaussian"]["threshold"] == fitted["threshold"] and 0 < fitted["threshold"] <= 1
    assert fitted["normal_vehicles"] and len(fitted["normal_vehicles"]) == 3
    assert len(list(cache.glob("luts/*/*.npz"))) == 4
    for spec, says in (("served:nosuch", "unknown model 'nosuch'"), ("travel-bank:x", "a whole number of vehicles"),
                       ("travel-bank:1", "at least 2 vehicles")):
        proc = _proc("fusion_eval.py", "--vehicles", "1", "--width", "160", "--height", "120", "--lut-step-m", "0.5",
                     "--cache", str(tmp_path / "untouched"), "--detector", spec, timeout=300)
        assert proc.returncode == 2 and says in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert not (tmp_path / "untouched").exists(), "a bad detector is refused before any table or model is built"


def test_fusion_eval_scores_a_station_camera_as_a_server_config_serves_it(tmp_path: Path) -> None:
    import yaml

    for vp in ("front", "back"):
        train = subprocess.run([sys.executable, "-m", "xrserver.cli", "train", "--model", "gaussian", "--preset",
                                "tiny", "--twin", "lower", "--twin-viewpoint", vp, "--twin-size", "160x120",
                                "--template", "--roi", "--photometric", "--out", str(tmp_path / vp)],
                               cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert train.returncode == 0, train.stderr[-3000:]
    config = tmp_path / "stations.yaml"
    config.write_text(yaml.safe_dump({"sources": [{"kind": "twin", "cameras": ["lower"], "width_px": 160,
                                                   "height_px": 120, "fps": 5.0}],  # 2 cm per frame set
                                      "models": {"lower": [str(tmp_path / "front"), str(tmp_path / "back")]},
                                      "analyzer": {"validation_passes": 1}}))
    out = _run("fusion_eval.py", "--vehicles", "1", "--cameras", "lower", "--width", "160", "--height", "120",
               "--step-m", "0.01", "--lut-step-m", "0.05", "--stations", "front", "back", "--station-window-m", "0.02",
               "--quiet-passes", "1", "--budgets", "1", "--cache", str(tmp_path / "cache"),
               "--detector", "refdiff", f"config:{config}", "--out", str(tmp_path / "report.json"))
    assert "near the stations ['front', 'back']" in out and "other normal passes publish nothing" in out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["frames_per_pass"] == 2 * 5, "each station and 2 cm either side, every cm"
    rows = {d: r["lower alone"] for d, r in report["results"].items()}
    assert set(rows) == {"refdiff", f"config:{config}"} and all(len(r) == 1 for r in report["results"].values())
    assert rows["refdiff"]["at_budget"]["1.0"]["recall"] >= 0.5, "the defects lie in view at the stations"
    (fitted,) = (tmp_path / "cache" / "thresholds").glob("fused-threshold-*.json")  # as the server fits it
    record = json.loads(fitted.read_text())
    assert rows[f"config:{config}"]["at_served"]["threshold"] == record["threshold"]
    assert len(record["normal_vehicles"]) == 1 and record["snapshots"] > 300, "a whole pass, every 2 cm"
    assert all(0 < r["at_quiet"]["threshold"] <= 1 for r in rows.values())
    assert all(0 < r["seam_coverage"] <= 1 for r in rows.values()), "coverage of the two stations' seams"
    quiet = rows["refdiff"]["at_quiet"]
    assert set(quiet["recall_by_type"]) == {"missing", "misalignment"} and len(
        quiet["false_to_nearest_defect_mm"]) == round(quiet["fp_per_vehicle"])
    assert 2 <= report["views_scored_per_pass"][f"config:{config}"] <= 10, "each model scores its station's views"
    for spec, says in ((f"config:{tmp_path / 'none.yaml'}", "cannot read the config"),
                       (f"config:{tmp_path / 'front' / 'manifest.json'}", "Extra inputs are not permitted")):
        proc = _proc("fusion_eval.py", "--vehicles", "1", "--width", "160", "--height", "120", "--cache",
                     str(tmp_path / "untouched"), "--detector", spec, timeout=300)
        assert proc.returncode == 2 and says in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "untouched").exists()
    proc = _proc("fusion_eval.py", "--vehicles", "1", "--cameras", "lower", "--width", "320", "--height", "240",
                 "--lut-step-m", "0.5", "--cache", str(tmp_path / "cache"), "--detector", f"config:{config}",
                 timeout=300)
    assert proc.returncode == 2 and "fitted on 160x120 frames, given for camera lower at 320x240" in proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]


def test_model_latency_runs_from_a_folder_without_the_renderer_and_checks_each_runtime(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 3)):
        (tmp_path / split / "good").mkdir(parents=True)
        for i in range(n):
            img = cv2.GaussianBlur(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), (5, 5), 0)
            cv2.imwrite(str(tmp_path / split / "good" / f"{i:03d}.png"), img)
    # the benchmark is run with open3d made unimportable: a GPU host's bare ML image has no 3D stack
    code = ("import runpy, sys; sys.modules['open3d'] = None; sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    proc = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "benchmarks" / "model_latency.py"), "--models", "gaussian",
         "patchcore", "--size", "64x48", "--views", "2", "--train-frames", "6", "--fit-steps", "1", "--warmup", "0",
         "--repeats", "2", "--frames", str(tmp_path), "--runtimes", "torch-cpu", "onnx-cpu", "torch-tpu"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "not on this machine, skipped: ['torch-tpu']" in proc.stderr
    rows = [line.split(" | ") for line in proc.stdout.splitlines() if line.startswith(("| gaussian", "| patchcore"))]
    assert [(r[0][2:], r[1], r[2]) for r in rows] == [
        (m, rt, b) for m in ("gaussian", "patchcore") for rt in ("torch-cpu", "onnx-cpu") for b in ("1", "2")]
    errors = {r[1]: float(r[-1].rstrip(" |")) for r in rows if r[0] == "| patchcore"}
    assert errors["torch-cpu"] == 0.0  # the reference itself
    assert errors["onnx-cpu"] < 1e-4  # another runtime: rounding, not another function
    proc = _proc("model_latency.py", "--runtimes", "torch-tpu", timeout=60)  # stops before any fitting
    assert proc.returncode == 2 and "--runtimes: none of ['torch-tpu'] is on this machine" in proc.stderr
    relative_error = runpy.run_path(str(ROOT / "benchmarks" / "model_latency.py"))["relative_error"]
    ref = np.linspace(0.0, 1.0, 16).reshape(1, 1, 4, 4)
    assert abs(relative_error(ref * 1.01, ref) - 0.01) < 1e-9
    assert relative_error(np.full_like(ref, np.nan), ref) == float("inf")
    assert relative_error(np.ones_like(ref), np.ones_like(ref)) is None  # a flat reference proves nothing


def test_viewpoint_shift_scores_a_viewpoint_model_off_its_station(tmp_path: Path) -> None:
    art = tmp_path / "front"
    train = subprocess.run([sys.executable, "-m", "xrserver.cli", "train", "--model", "gaussian", "--preset", "tiny",
                            "--twin", "lower", "--twin-viewpoint", "front", "--twin-size", "160x120", "--template",
                            "--roi", "--photometric", "--contrast", "--out", str(art)],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stderr[-3000:]
    out = _run("viewpoint_shift.py", str(art), "--viewpoint", "front", "--normal", "3", "--defects-per-type", "1",
               "--shifts-cm", "0", "30", timeout=600)
    training = json.loads((art / "manifest.json").read_text())["training"]
    trained, (lo, hi) = training["template_offsets_px"], training["station_travel_m"]
    assert f"3 normal and 5 defect vehicles; scored by default: template offsets [[{trained[0][0] - 1}, " in out
    assert f"conveyor travel {lo - 0.01:.3f} to {hi + 0.01:.3f} m" in out, "and only at its station, as served"
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| +")]
    assert [r[0] for r in rows] == ["| +0", "| +30"]
    assert rows[0][-1] == "1.00x |", "the station is the baseline"
    assert int(rows[0][3].split(" of ")[0]) >= 3, "the station's frames are scored by default"
    assert rows[1][3].startswith("0 of "), "30 cm off its station no view is scored by default"
    proc = _proc("viewpoint_shift.py", str(ROOT / "configs"), "--viewpoint", "front")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr[-300:]
