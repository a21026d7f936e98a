"""Operating points: the threshold maximising IoU (the paper's τ*) or F1, with P/R/F1/IoU there.

With P = TP/(TP+FP) and R = TP/(TP+FN): IoU = TP/(TP+FP+FN) = P·R/(P + R − P·R), so both optima
come from one precision-recall curve (scikit-learn), exact over every distinct score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.metrics import precision_recall_curve


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """A threshold τ (predict anomalous when score ≥ τ) and the counts and rates it gives."""

    threshold: float
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    iou: float

    @property
    def fp_share(self) -> float:
        """FP / (FP + FN), Eq. (13); 0 when there are no errors."""
        err = self.fp + self.fn
        return self.fp / err if err else 0.0


def point_at(labels: npt.ArrayLike, scores: npt.ArrayLike, threshold: float) -> OperatingPoint:
    """Counts and rates at a given threshold."""
    y = np.asarray(labels, bool).ravel()
    pred = np.asarray(scores).ravel() >= threshold
    tp = int(np.sum(pred & y))
    fp = int(np.sum(pred & ~y))
    fn = int(np.sum(~pred & y))
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    iou = tp / (tp + fp + fn) if tp + fp + fn else 0.0
    return OperatingPoint(float(threshold), tp, fp, fn, p, r, f1, iou)


def _best(labels: npt.ArrayLike, scores: npt.ArrayLike, criterion: str) -> OperatingPoint:
    y = np.asarray(labels, bool).ravel()
    s = np.asarray(scores, np.float64).ravel()
    if not y.any():
        raise ValueError("an operating point needs at least one positive sample")
    p, r, thr = precision_recall_curve(y, s)
    p, r = p[:-1], r[:-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        if criterion == "iou":
            val = np.where(p + r - p * r > 0, p * r / (p + r - p * r), 0.0)
        else:
            val = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return point_at(y, s, float(thr[int(np.argmax(val))]))


def best_iou_point(labels: npt.ArrayLike, scores: npt.ArrayLike) -> OperatingPoint:
    """τ* = argmax_τ IoU(Y, {S ≥ τ}). Raises ValueError without positives."""
    return _best(labels, scores, "iou")


def best_f1_point(labels: npt.ArrayLike, scores: npt.ArrayLike) -> OperatingPoint:
    """The threshold maximising F1. Raises ValueError without positives."""
    return _best(labels, scores, "f1")
