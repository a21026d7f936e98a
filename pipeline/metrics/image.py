"""Image-level metrics: AUROC, AU-PR, and precision/recall/F1/FP_share at an operating threshold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, roc_auc_score

from pipeline.metrics.thresholds import OperatingPoint, best_f1_point, point_at


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
    y = np.asarray(labels, bool).ravel()
    s = np.asarray(scores, np.float64).ravel()
    if y.all() or not y.any():
        raise ValueError("image metrics need both normal and anomalous images")
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
