"""AUPRO: area under the per-region-overlap curve up to a false-positive rate limit (0.3), normalised.

Exact over all thresholds: pixels are sorted by score; each normal pixel adds 1/N_normal to the FPR,
each pixel of GT region k adds 1/(|region k|·K) to the mean PRO (normal pixels of equal score are
taken together; below the first threshold past the FPR limit, no pixel is needed). Regions are
8-connected components of each image's GT mask. The curve is cut at ``fpr_limit`` (interpolated)
and integrated with the trapezoid rule, then divided by ``fpr_limit`` so a perfect detector scores 1.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt


def aupro(masks: npt.ArrayLike, maps: npt.ArrayLike, fpr_limit: float = 0.3) -> float:
    """AUPRO of ``maps`` (N, H, W) against boolean ``masks`` (N, H, W).

    Float32 and float64 maps keep their dtype. Only scores down to the first threshold past the FPR
    limit are taken (a partition finds it); of those, the normal pixels, which only count towards the
    FPR, as their distinct scores with counts, and the GT pixels one by one with their region's weight.
    Peak memory is about 10 bytes per pixel above the inputs (``benchmarks/metric_memory.py``).

    Raises:
        ValueError: shapes differ, no GT region, or no normal pixel.
    """
    m = np.asarray(masks, bool)
    s = np.asarray(maps)
    if s.dtype not in (np.float32, np.float64):
        s = s.astype(np.float64)
    if m.shape != s.shape or m.ndim != 3:
        raise ValueError(f"masks and maps must be (N, H, W) of the same shape, got {m.shape} and {s.shape}")
    normal = s[~m]
    n_normal = normal.size
    if n_normal == 0:
        raise ValueError("AUPRO needs at least one GT region and one normal pixel")
    # only thresholds down to the first one past the FPR limit count: that of the k-th highest normal score
    k = int(fpr_limit * n_normal) + 1
    floor = -np.inf
    if k <= n_normal:
        normal.partition(n_normal - k)
        floor = normal[n_normal - k]
        normal = normal[normal >= floor]
    gt_scores: list[npt.NDArray[np.floating]] = []
    gt_weights: list[npt.NDArray[np.float64]] = []
    n_regions = 0
    for i in np.flatnonzero(m.reshape(len(m), -1).any(axis=1)):
        n_lab, lab = cv2.connectedComponents(m[i].astype(np.uint8), connectivity=8)
        ids, gt = lab[m[i]], s[i][m[i]]
        above = gt >= floor
        gt_scores.append(gt[above])
        gt_weights.append(1.0 / np.bincount(ids, minlength=n_lab)[ids[above]])  # 1 / |region| per pixel
        n_regions += n_lab - 1
    if n_regions == 0:
        raise ValueError("AUPRO needs at least one GT region and one normal pixel")
    normal, normal_counts = np.unique(normal, return_counts=True)
    # each pixel of region k adds 1 / (|region k| · K) to the mean PRO, each normal pixel 1 to the FP count
    scores = np.concatenate([normal, *gt_scores])
    fp = np.concatenate([normal_counts, np.zeros(len(scores) - len(normal), np.int64)])
    pro = np.concatenate([np.zeros(len(normal)), *gt_weights]) / n_regions
    order = np.argsort(scores, kind="stable")[::-1]  # descending; the order within ties does not matter
    scores, fp, pro = scores[order], fp[order], pro[order]
    # keep the last entry of each run of equal scores (a threshold takes all ties at once)
    last = np.r_[scores[1:] != scores[:-1], True]
    fpr = np.r_[0.0, np.cumsum(fp)[last] / n_normal]
    pro = np.r_[0.0, np.cumsum(pro)[last]]
    if fpr[-1] < fpr_limit:
        fpr = np.r_[fpr, fpr_limit]
        pro = np.r_[pro, pro[-1]]
    cut = int(np.searchsorted(fpr, fpr_limit, side="right"))
    pro_at = float(np.interp(fpr_limit, fpr, pro))
    x = np.r_[fpr[:cut], fpr_limit]
    y = np.r_[pro[:cut], pro_at]
    return float(np.trapezoid(y, x) / fpr_limit)
