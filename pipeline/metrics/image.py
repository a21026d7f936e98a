"""Image-level metrics: AUROC, AU-PR, and precision/recall/F1/FP_share at an operating threshold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score

from pipeline.metrics.thresholds import OperatingPoint, best_f1_point, point_at

F64 = npt.NDArray[np.float64]


def _both_classes(labels: npt.ArrayLike, scores: npt.ArrayLike, what: str) -> tuple[npt.NDArray[np.bool_], F64]:
    """(labels, scores) as flat bool and float64 arrays; ValueError unless both classes are present."""
    y = np.asarray(labels, bool).ravel()
    if y.all() or not y.any():
        raise ValueError(f"{what}: both normal and anomalous images are needed")
    return y, np.asarray(scores, np.float64).ravel()


@dataclass(frozen=True, slots=True)
class ImageMetrics:
    """Fractions in [0, 1]. ``point`` is the operating point (given threshold, else F1-optimal)."""

    auroc: float
    au_pr: float
    precision: float
    recall: float
    f1: float
    fp_share: float
    point: OperatingPoint


def image_metrics(labels: npt.ArrayLike, scores: npt.ArrayLike, threshold: float | None = None) -> ImageMetrics:
    """``labels`` (N,) True = anomalous, ``scores`` (N,). AU-PR is average precision (scikit-learn).

    Raises:
        ValueError: both classes are needed.
    """
    y, s = _both_classes(labels, scores, "image metrics")
    pt = point_at(y, s, threshold) if threshold is not None else best_f1_point(y, s)
    return ImageMetrics(float(roc_auc_score(y, s)), float(average_precision_score(y, s)), pt.precision, pt.recall,
                        pt.f1, pt.fp_share, pt)


def auroc_by_type(types: Sequence[str], scores: npt.ArrayLike, normal: str = "good") -> dict[str, float]:
    """Image AUROC of each defect type against all the normal images (``types[i] == normal``).

    Which defects a model sees, e.g. whether a camera resolves a 5 mm hole. Types in order of first
    appearance; empty when there are no normal images or no defects.
    """
    t = np.asarray(types, dtype=object).ravel()
    s = np.asarray(scores, np.float64).ravel()
    if len(t) != len(s):
        raise ValueError(f"{len(t)} types and {len(s)} scores")
    good = t == normal
    if not good.any():
        return {}
    out: dict[str, float] = {}
    for k in dict.fromkeys(t[~good]):
        sel = good | (t == k)
        out[str(k)] = float(roc_auc_score(t[sel] != normal, s[sel]))
    return out


def auroc_interval(labels: npt.ArrayLike, scores: npt.ArrayLike, level: float = 0.95, resamples: int = 2000,
                   seed: int = 0) -> tuple[float, float]:
    """A percentile bootstrap interval of image AUROC over the test images: normal and anomalous images
    are resampled separately (``scipy.stats.bootstrap``), so every resample has both. How far another
    test set of the same size could move the AUROC; seeds do not show that, as they share one test set.

    Raises:
        ValueError: both classes are needed.
    """
    y, s = _both_classes(labels, scores, "an AUROC interval")

    def auroc(normal: F64, anomalous: F64, axis: int) -> F64:
        return _pairwise_auroc(np.moveaxis(normal, axis, -1), np.moveaxis(anomalous, axis, -1))

    res = stats.bootstrap((s[~y], s[y]), auroc, n_resamples=resamples, confidence_level=level, method="percentile",
                          vectorized=True, batch=200, rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


@dataclass(frozen=True, slots=True)
class AurocDifference:
    """Image AUROC of model b minus model a on one test set, and its paired bootstrap interval."""

    difference: float
    low: float
    high: float

    @property
    def resolved(self) -> bool:
        """Whether the interval leaves out 0: the test set alone would not have made the difference."""
        return self.low > 0 or self.high < 0


def auroc_difference(labels: npt.ArrayLike, scores_a: npt.ArrayLike, scores_b: npt.ArrayLike, level: float = 0.95,
                     resamples: int = 2000, seed: int = 0, groups: npt.ArrayLike | None = None) -> AurocDifference:
    """AUROC(b) - AUROC(a) on the same test images, with a paired percentile bootstrap interval: each
    resample draws normal and anomalous images (separately, as :func:`auroc_interval`) and scores both
    models on that draw, so what the test images do to both models cancels. Two models whose own
    intervals overlap can still differ resolvably.

    ``groups`` (one label per image, e.g. the viewpoint) splits the images into test sets scored by
    models of their own, whose scores do not rank across sets: the difference is then the mean over the
    groups of each group's difference, and each resample draws every group's normal and anomalous
    images apart. More test sets narrow the interval of the mean as a larger one would.

    Raises:
        ValueError: both classes are needed (in every group), and one score per image from each model.
    """
    y, a = _both_classes(labels, scores_a, "an AUROC difference")
    b = np.asarray(scores_b, np.float64).ravel()
    g = np.zeros(len(y), np.intp) if groups is None else np.unique(np.asarray(groups).ravel(), return_inverse=True)[1]
    if len(a) != len(y) or len(b) != len(y) or len(g) != len(y):
        raise ValueError(f"an AUROC difference needs one score per image from each model: {len(y)} labels, "
                         f"{len(a)} and {len(b)} scores, {len(g)} groups")
    samples = tuple(np.flatnonzero((g == k) & (y == cls)) for k in range(g.max() + 1) for cls in (False, True))
    if any(len(s) == 0 for s in samples):
        raise ValueError("an AUROC difference: both normal and anomalous images are needed in every group")

    def diff(*idx_axis: npt.NDArray[np.intp], axis: int) -> F64:
        idx = [np.moveaxis(i, axis, -1).astype(np.intp) for i in idx_axis]
        per_group = [_pairwise_auroc(b[n], b[d]) - _pairwise_auroc(a[n], a[d])
                     for n, d in zip(idx[::2], idx[1::2], strict=True)]
        return np.asarray(np.mean(per_group, axis=0), np.float64)

    res = stats.bootstrap(samples, diff, n_resamples=resamples, confidence_level=level, method="percentile",
                          vectorized=True, batch=200, rng=np.random.default_rng(seed))
    whole = diff(*samples, axis=-1)
    return AurocDifference(float(whole), float(res.confidence_interval.low), float(res.confidence_interval.high))


def _pairwise_auroc(normal: F64, anomalous: F64) -> F64:
    """AUROC over the last axis of ``normal`` and ``anomalous`` scores (the Mann-Whitney statistic, ties
    counting half), for every leading index at once."""
    d, n = anomalous[..., :, None], normal[..., None, :]
    return np.asarray(((d > n) + 0.5 * (d == n)).mean(axis=(-2, -1)), np.float64)
