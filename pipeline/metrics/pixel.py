"""Pixel-level metrics: AUROC, AU-PR, AUPRO@0.3, and IoU/P/R/F1/FP_share at the IoU-maximising threshold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, roc_auc_score

from pipeline.metrics.aupro import aupro
from pipeline.metrics.thresholds import OperatingPoint, best_iou_point, distinct_pairs, point_at


@dataclass(frozen=True, slots=True)
class PixelMetrics:
    auroc: float
    au_pr: float
    aupro: float
    iou: float
    precision: float
    recall: float
    f1: float
    fp_share: float
    point: OperatingPoint


def pixel_metrics(masks: npt.ArrayLike, maps: npt.ArrayLike, valid: npt.ArrayLike | None = None,
                  threshold: float | None = None, fpr_limit: float = 0.3) -> PixelMetrics:
    """``masks`` (N, H, W) bool GT, ``maps`` (N, H, W) scores. ``threshold=None`` → τ* (IoU-optimal).

    ``valid`` (N, H, W) bool restricts AUROC/AU-PR/operating point to those pixels (e.g. an ROI); AUPRO
    always uses whole images (the maps should already be masked then).

    Raises:
        ValueError: shapes differ, or no anomalous / no normal pixel.
    """
    m = np.asarray(masks, bool)
    s = np.asarray(maps, np.float32)
    if m.shape != s.shape:
        raise ValueError(f"masks {m.shape} and maps {s.shape} differ")
    # each distinct (label, score) pair once, with its count: exact, in a fraction of the memory
    if valid is None:
        y, v, n = distinct_pairs(m, s)
    else:
        sel = np.asarray(valid, bool)
        y, v, n = distinct_pairs(m[sel], s[sel])
    if not y.any() or y.all():
        raise ValueError("pixel metrics need both anomalous and normal pixels")
    pt = point_at(y, v, threshold, n) if threshold is not None else best_iou_point(y, v, n)
    auroc = float(roc_auc_score(y, v, sample_weight=n))
    au_pr = float(average_precision_score(y, v, sample_weight=n))
    return PixelMetrics(auroc, au_pr, aupro(m, s, fpr_limit), pt.iou, pt.precision, pt.recall, pt.f1, pt.fp_share, pt)


def peak_in_defect_by_type(types: Sequence[str], maps: npt.ArrayLike, masks: npt.ArrayLike,
                           normal: str = "good") -> dict[str, float]:
    """Share of each defect type's images whose map maximum lies inside the defect's ground truth.

    Whether a model's image score comes from the defect or from elsewhere in the frame: a type can
    rank above the normal images (``auroc_by_type``) while its maps peak somewhere else. ``maps`` and
    ``masks`` (N, H, W); types in order of first appearance; images of type ``normal`` are skipped.

    Raises:
        ValueError: lengths or shapes that do not match.
    """
    t = np.asarray(types, dtype=object).ravel()
    m, gt = np.asarray(maps), np.asarray(masks, bool)
    if m.shape != gt.shape or m.ndim != 3 or len(t) != len(m):
        raise ValueError(f"{len(t)} types, maps {m.shape} and masks {gt.shape} do not match")
    hits = gt.reshape(len(gt), -1)[np.arange(len(gt)), m.reshape(len(m), -1).argmax(1)]
    return {str(k): float(hits[t == k].mean()) for k in dict.fromkeys(t[t != normal])}
