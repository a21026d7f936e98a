"""The paper's metrics checked against hand-computed values and scikit-learn / scipy references."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score

from pipeline.metrics import (
    aupro,
    auroc_by_type,
    auroc_difference,
    auroc_interval,
    benjamini_hochberg,
    best_iou_point,
    fn_size_tertiles,
    image_metrics,
    mean_std,
    paired_tests,
    peak_in_defect_by_type,
    pixel_metrics,
)


def test_image_metrics_match_scikit_learn_and_hand_counts() -> None:
    y = np.array([0, 0, 0, 1, 1, 1, 0, 1], bool)
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.7, 0.3, 0.2, 0.9])
    m = image_metrics(y, s, threshold=0.5)
    assert m.auroc == pytest.approx(roc_auc_score(y, s))
    assert m.au_pr == pytest.approx(average_precision_score(y, s))
    # at 0.5: TP = 3 (0.8, 0.7, 0.9), FN = 1 (0.3), FP = 0
    assert (m.point.tp, m.point.fp, m.point.fn) == (3, 0, 1)
    assert m.precision == 1.0 and m.recall == 0.75 and m.f1 == pytest.approx(6 / 7)
    assert m.fp_share == 0.0  # FP / (FP + FN), Eq. (13)
    with pytest.raises(ValueError, match="both"):
        image_metrics(np.ones(3, bool), np.ones(3))


def test_auroc_by_type_ranks_each_defect_type_against_the_normal_images() -> None:
    types = ["good", "hole", "good", "missing", "hole", "good", "missing"]
    s = np.array([0.2, 0.1, 0.5, 0.9, 0.6, 0.3, 0.4])
    by = auroc_by_type(types, s)
    assert list(by) == ["hole", "missing"]  # first appearance
    # hole 0.1 beats no normal, 0.6 beats all three: 3 of 6 pairs; missing: 0.9 beats 3, 0.4 beats 2 of 3
    assert by == {"hole": pytest.approx(3 / 6), "missing": pytest.approx(5 / 6)}
    sel = [0, 2, 3, 5, 6]
    assert by["missing"] == pytest.approx(roc_auc_score([t != "good" for t in np.take(types, sel)], s[sel]))
    assert auroc_by_type(["hole", "hole"], [0.1, 0.2]) == {} and auroc_by_type(["good"], [0.1]) == {}
    with pytest.raises(ValueError, match="2 types and 3 scores"):
        auroc_by_type(["good", "hole"], [0.1, 0.2, 0.3])


def test_the_auroc_interval_holds_the_auroc_and_narrows_with_more_test_images() -> None:
    assert auroc_interval([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == (1.0, 1.0)  # every resample is separated
    rng = np.random.default_rng(3)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.r_[np.zeros(n, bool), np.ones(n, bool)]
        return y, np.r_[rng.normal(0, 1, n), rng.normal(1.3, 1, n)]  # true AUROC Φ(1.3 / √2) = 0.82

    y, s = draw(22)
    lo, hi = auroc_interval(y, s)
    assert lo < roc_auc_score(y, s) < hi and 0.15 < hi - lo < 0.35
    assert auroc_interval(y, s) == (lo, hi), "seeded: the same interval each time"
    y4, s4 = draw(352)  # 16x the images: about a quarter of the width
    lo4, hi4 = auroc_interval(y4, s4)
    assert 0.15 * (hi - lo) < hi4 - lo4 < 0.4 * (hi - lo)
    assert lo4 < 0.82 < hi4
    with pytest.raises(ValueError, match="both"):
        auroc_interval([1, 1], [0.3, 0.4])


def test_the_paired_auroc_difference_resolves_what_two_overlapping_intervals_cannot() -> None:
    rng = np.random.default_rng(5)
    y = np.r_[np.zeros(24, bool), np.ones(20, bool)]  # the benchmark's default test set at one viewpoint
    frame = rng.normal(0, 1, len(y))  # what each test image does to any model: shared by both
    a = frame + 1.0 * y + rng.normal(0, 0.05, len(y))
    b = frame + 1.4 * y + rng.normal(0, 0.05, len(y))  # b separates the defects a little better
    (lo_a, hi_a), lo_b = auroc_interval(y, a), auroc_interval(y, b)[0]
    assert lo_b < hi_a, "alone, the two intervals overlap"
    d = auroc_difference(y, a, b)
    assert d.difference == pytest.approx(roc_auc_score(y, b) - roc_auc_score(y, a))
    assert 0 < d.low <= d.difference <= d.high and d.resolved
    assert d.high - d.low < (hi_a - lo_a) / 2, "pairing cancels what the images share"
    back = auroc_difference(y, b, a)
    assert (back.difference, back.low, back.high) == pytest.approx((-d.difference, -d.high, -d.low))
    same = auroc_difference(y, a, a)
    assert (same.difference, same.low, same.high) == (0.0, 0.0, 0.0) and not same.resolved
    noise = auroc_difference(y, a, a + rng.normal(0, 1, len(y)))  # b is a with noise added: no resolved gain
    assert noise.low < noise.difference < noise.high and noise.high - noise.low > 0.05
    with pytest.raises(ValueError, match="one score per image"):
        auroc_difference(y, a, b[:-1])
    with pytest.raises(ValueError, match="both"):
        auroc_difference([1, 1], [0.3, 0.4], [0.3, 0.4])


def test_the_auroc_difference_over_several_test_sets_is_the_mean_of_theirs_and_narrower() -> None:
    rng = np.random.default_rng(8)

    def test_set(offset: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # one viewpoint: its own models
        y = np.r_[np.zeros(96, bool), np.ones(80, bool)]
        frame = rng.normal(0, 1, len(y))
        return y, offset + frame + 1.0 * y, offset + 3 * (frame + 1.2 * y)  # b on a scale of its own

    (y1, a1, b1), (y2, a2, b2) = test_set(0.0), test_set(5.0)
    one, two = auroc_difference(y1, a1, b1), auroc_difference(y2, a2, b2)
    y, a, b = np.r_[y1, y2], np.r_[a1, a2], np.r_[b1, b2]
    views = ["front"] * len(y1) + ["centre"] * len(y2)
    both = auroc_difference(y, a, b, groups=views)
    assert both.difference == pytest.approx((one.difference + two.difference) / 2)
    assert auroc_difference(y, a, b).difference != pytest.approx(both.difference), "pooled scores would rank across"
    assert both.low <= both.difference <= both.high
    assert both.high - both.low < 0.85 * min(one.high - one.low, two.high - two.low), "two test sets narrow it"
    assert auroc_difference(y1, a1, b1, groups=np.zeros(len(y1))) == one
    with pytest.raises(ValueError, match="every group"):
        auroc_difference(y, a, b, groups=["front"] * len(y1) + ["centre"] * 96 + ["back"] * 80)
    with pytest.raises(ValueError, match="groups"):
        auroc_difference(y, a, b, groups=views[:-1])


def test_peak_in_defect_counts_the_maps_that_peak_inside_their_ground_truth() -> None:
    types = ["hole", "good", "missing", "hole", "missing"]
    masks = np.zeros((5, 4, 6), bool)
    masks[[0, 3], 1:3, 1:3] = True
    masks[[2, 4], 3, :] = True
    maps = np.zeros((5, 4, 6), np.float32)
    maps[0, 2, 2] = 5.0  # inside
    maps[1, 0, 0] = 9.0  # a normal image: skipped
    maps[2, 3, 5], maps[2, 0, 0] = 1.0, 2.0  # the defect is seen, but a brighter spot elsewhere wins
    maps[3, 1, 1] = 3.0  # inside
    maps[4, 3, 0] = 0.5  # inside
    assert peak_in_defect_by_type(types, maps, masks) == {"hole": 1.0, "missing": 0.5}
    assert peak_in_defect_by_type(["good"], maps[1:2], masks[1:2]) == {}
    with pytest.raises(ValueError, match="do not match"):
        peak_in_defect_by_type(types[:4], maps, masks)


def test_iou_optimal_threshold_is_the_best_over_all_thresholds() -> None:
    rng = np.random.default_rng(1)
    y = rng.random(400) < 0.2
    s = y * 0.5 + rng.random(400)
    pt = best_iou_point(y, s)
    brute = max(((y & (s >= t)).sum() / ((y | (s >= t)).sum()), t) for t in np.unique(s))
    assert pt.iou == pytest.approx(brute[0])


def test_pixel_metrics_on_masked_maps_full_of_ties_equal_scikit_learn_on_every_pixel() -> None:
    """Maps zero outside a band, as a masked model's are, with coarse scores inside it: the metrics
    computed on the distinct (label, score) pairs equal scikit-learn's on every pixel, and the
    IoU-optimal point's counts equal a threshold-by-threshold count."""
    rng = np.random.default_rng(5)
    masks = np.zeros((4, 30, 40), bool)
    masks[1, 12:16, 5:30] = masks[3, 10:13, 20:38] = True
    maps = (np.round(rng.random(masks.shape) * 8) + masks * 3).astype(np.float32)
    maps[:, :8] = maps[:, 20:] = 0.0  # outside the ROI band
    valid = np.zeros(masks.shape, bool)
    valid[:, 8:20] = True
    y, s = masks.ravel(), maps.ravel()
    for sel in (None, valid):
        p = pixel_metrics(masks, maps, valid=sel)
        yy, ss = (y, s) if sel is None else (masks[sel], maps[sel])
        assert p.auroc == pytest.approx(roc_auc_score(yy, ss), abs=1e-12)
        assert p.au_pr == pytest.approx(average_precision_score(yy, ss), abs=1e-12)
        best = max((int((yy & (ss >= t)).sum()) / int((yy | (ss >= t)).sum()), float(t)) for t in np.unique(ss))
        assert p.iou == pytest.approx(best[0]) and p.point.threshold == best[1]
        assert p.point.tp + p.point.fn == int(yy.sum()) and p.point.fp == int((~yy & (ss >= best[1])).sum())
    fixed = pixel_metrics(masks, maps, threshold=9.0).point
    assert (fixed.tp, fixed.fp, fixed.fn) == (int((y & (s >= 9)).sum()), int((~y & (s >= 9)).sum()),
                                              int((y & (s < 9)).sum()))


def test_pixel_metrics_and_aupro_of_a_perfect_and_a_blind_detector() -> None:
    masks = np.zeros((2, 16, 16), bool)
    masks[0, 4:8, 4:8] = True
    masks[1, 10:12, 2:14] = True
    perfect = masks.astype(np.float32)
    p = pixel_metrics(masks, perfect)
    assert p.auroc == 1.0 and p.au_pr == 1.0 and p.aupro == pytest.approx(1.0)
    assert p.iou == 1.0 and p.fp_share == 0.0
    inverted = 1.0 - perfect
    assert aupro(masks, inverted) == pytest.approx(0.0)


def test_aupro_on_a_constructed_case() -> None:
    """One region of 4 pixels, 12 normal pixels. Scores: two region pixels first, then 6 normal
    pixels (FPR 0.5 > 0.3), then the rest. PRO = 0.5 from FPR 0 on, so AUPRO(0.3) = 0.5."""
    masks = np.zeros((1, 4, 4), bool)
    masks[0, 0, :] = True
    maps = np.zeros((1, 4, 4))
    maps[0, 0, :2] = 1.0
    maps[0, 1:, :2] = 0.5  # 6 normal pixels
    assert aupro(masks, maps, fpr_limit=0.3) == pytest.approx(0.5)


def test_aupro_matches_a_threshold_by_threshold_count_over_images_regions_ties_and_dtypes() -> None:
    """Several images with several regions each, scores with many ties: the sorted cumulative AUPRO
    equals counting, at every distinct score, the normal pixels above it and each region's overlap."""
    rng = np.random.default_rng(3)
    masks = np.zeros((3, 20, 24), bool)
    masks[0, 2:5, 2:9] = masks[0, 12:18, 15:17] = True  # two regions in one image
    masks[2, 8:11, 4:20] = True  # image 1 has none
    maps = np.round(rng.random(masks.shape) * 6 + masks * rng.random(masks.shape) * 4)  # integers 0..10
    regions = []
    for i in range(len(masks)):
        n, lab = cv2.connectedComponents(masks[i].astype(np.uint8), connectivity=8)
        for k in range(1, n):
            region = np.zeros_like(masks)
            region[i] = lab == k
            regions.append(region)
    assert len(regions) == 3
    fpr, pro = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        above = maps >= t
        fpr.append((above & ~masks).sum() / (~masks).sum())
        pro.append(np.mean([(above & r).sum() / r.sum() for r in regions]))
    f, p_ = np.array(fpr), np.array(pro)
    for limit in (0.3, 0.05, 1.0):  # the curve is cut past the limit: a small, the usual and no cut
        cut = f <= limit
        x, y = np.r_[f[cut], limit], np.r_[p_[cut], np.interp(limit, f, p_)]
        expected = np.trapezoid(y, x) / limit
        for dtype in (np.float64, np.float32, np.uint8):
            assert aupro(masks, maps.astype(dtype), fpr_limit=limit) == pytest.approx(expected, abs=1e-12)


def test_size_tertiles_count_misses_per_view_and_bin() -> None:
    views = ["lower"] * 6 + ["side"] * 3
    ratios = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.1, 0.2, 0.3]
    missed = [True, True, False, False, False, True, True, False, False]
    t = {s.view: s for s in fn_size_tertiles(views, ratios, missed)}
    assert (t["lower"].fn_small, t["lower"].fn_medium, t["lower"].fn_large) == (2, 0, 1)
    assert t["lower"].n_small + t["lower"].n_medium + t["lower"].n_large == 6
    assert t["side"].fn_small == 1


def test_benjamini_hochberg_and_paired_tests_match_scipy() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.2, 0.5])
    np.testing.assert_allclose(benjamini_hochberg(p), stats.false_discovery_control(p, method="bh"))
    runs = {"a": [0.90, 0.91, 0.92, 0.93], "b": [0.80, 0.82, 0.81, 0.83], "c": [0.90, 0.92, 0.91, 0.94]}
    tests = {(t.model_a, t.model_b): t for t in paired_tests(runs)}
    ref = stats.ttest_rel(runs["a"], runs["b"])
    assert tests[("a", "b")].t == pytest.approx(ref.statistic) and tests[("a", "b")].p == pytest.approx(ref.pvalue)
    raw = [tests[k].p for k in sorted(tests)]
    np.testing.assert_allclose([tests[k].p_bh for k in sorted(tests)], stats.false_discovery_control(raw))
    ms = mean_std([0.9, 0.92, 0.94])
    assert ms.mean == pytest.approx(0.92) and ms.std == pytest.approx(0.02)
    with pytest.raises(ValueError, match="matched runs"):
        paired_tests({"a": [0.9, 0.8], "b": [0.9]})
