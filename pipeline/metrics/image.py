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
        a, n = np.moveaxis(anomalous, axis, -1)[..., :, None], np.moveaxis(normal, axis, -1)[..., None, :]
        return np.asarray(((a > n) + 0.5 * (a == n)).mean(axis=(-2, -1)), np.float64)

    res = stats.bootstrap((s[~y], s[y]), auroc, n_resamples=resamples, confidence_level=level, method="percentile",
                          vectorized=True, batch=200, rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)
