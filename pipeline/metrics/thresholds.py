"""Operating points: the threshold maximising IoU (the paper's τ*) or F1, with P/R/F1/IoU there.

With P = TP/(TP+FP) and R = TP/(TP+FN): IoU = TP/(TP+FP+FN) = P·R/(P + R − P·R), so both optima
come from one precision-recall curve (scikit-learn), exact over every distinct score.

Pixel sets are large and full of ties (a masked map is zero outside its ROI), so the curves are
computed on :func:`distinct_pairs`: each distinct (label, score) pair once, weighted by how often it
occurs. A curve's thresholds are the distinct scores, so every value is the one the samples
themselves give, at a fraction of the memory (``benchmarks/metric_memory.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

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


class DistinctPairs(NamedTuple):
    """Distinct (label, score) pairs, and how many samples each stands for."""

    labels: npt.NDArray[np.bool_]
    scores: npt.NDArray[np.floating]
    counts: npt.NDArray[np.int64]


def distinct_pairs(labels: npt.ArrayLike, scores: npt.ArrayLike) -> DistinctPairs:
    """Each distinct (label, score) pair of the samples once, with its count (scikit-learn's
    ``sample_weight``). Float32 and float64 scores keep their dtype; others become float64.

    Raises:
        ValueError: labels and scores of different sizes.
    """
    y = np.asarray(labels, bool).ravel()
    s = np.asarray(scores).ravel()
    if s.dtype not in (np.float32, np.float64):
        s = s.astype(np.float64)
    if y.shape != s.shape:
        raise ValueError(f"{y.size} labels for {s.size} scores")
    normal = np.unique(s[~y], return_counts=True)
    anomalous = np.unique(s[y], return_counts=True)
    return DistinctPairs(np.repeat([False, True], [len(normal[0]), len(anomalous[0])]),
                         np.concatenate([normal[0], anomalous[0]]),
                         np.concatenate([normal[1], anomalous[1]]).astype(np.int64))


def point_at(labels: npt.ArrayLike, scores: npt.ArrayLike, threshold: float,
             counts: npt.ArrayLike | None = None) -> OperatingPoint:
    """Counts and rates at a given threshold; ``counts``: how many samples each one stands for."""
    y = np.asarray(labels, bool).ravel()
    pred = np.asarray(scores).ravel() >= threshold
    n = None if counts is None else np.asarray(counts, np.int64).ravel()
    tp, fp, fn = (int(np.sum(sel) if n is None else n[sel].sum()) for sel in (pred & y, pred & ~y, ~pred & y))
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    iou = tp / (tp + fp + fn) if tp + fp + fn else 0.0
    return OperatingPoint(float(threshold), tp, fp, fn, p, r, f1, iou)


def _best(labels: npt.ArrayLike, scores: npt.ArrayLike, criterion: str,
          counts: npt.ArrayLike | None) -> OperatingPoint:
    y, s, n = distinct_pairs(labels, scores) if counts is None else \
        (np.asarray(labels, bool).ravel(), np.asarray(scores).ravel(), np.asarray(counts, np.int64).ravel())
    if not y.any():
        raise ValueError("an operating point needs at least one positive sample")
    p, r, thr = precision_recall_curve(y, s, sample_weight=n)
    p, r = p[:-1], r[:-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        if criterion == "iou":
            val = np.where(p + r - p * r > 0, p * r / (p + r - p * r), 0.0)
        else:
            val = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return point_at(y, s, float(thr[int(np.argmax(val))]), n)


def best_iou_point(labels: npt.ArrayLike, scores: npt.ArrayLike, counts: npt.ArrayLike | None = None) -> OperatingPoint:
    """τ* = argmax_τ IoU(Y, {S ≥ τ}); ``counts`` as :func:`point_at`'s (None: every sample once).
    Raises ValueError without positives."""
    return _best(labels, scores, "iou", counts)


def best_f1_point(labels: npt.ArrayLike, scores: npt.ArrayLike, counts: npt.ArrayLike | None = None) -> OperatingPoint:
    """The threshold maximising F1; ``counts`` as :func:`point_at`'s. Raises ValueError without positives."""
    return _best(labels, scores, "f1", counts)
