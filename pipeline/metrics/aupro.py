"""AUPRO: area under the per-region-overlap curve up to a false-positive rate limit (0.3), normalised.

Exact over all thresholds: pixels are sorted by score; each normal pixel adds 1/N_normal to the FPR,
each pixel of GT region k adds 1/(|region k|·K) to the mean PRO. Regions are 8-connected components
of each image's GT mask. The curve is cut at ``fpr_limit`` (interpolated) and integrated with the
trapezoid rule, then divided by ``fpr_limit`` so a perfect detector scores 1.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt


def aupro(masks: npt.ArrayLike, maps: npt.ArrayLike, fpr_limit: float = 0.3) -> float:
    """AUPRO of ``maps`` (N, H, W) against boolean ``masks`` (N, H, W).

    Float32 and float64 maps are sorted as they are. Peak memory is about 22 bytes per pixel above the
    inputs, half of one scikit-learn ROC curve's (``benchmarks/metric_memory.py``).

    Raises:
        ValueError: shapes differ, no GT region, or no normal pixel.
    """
    m = np.asarray(masks, bool)
    s = np.asarray(maps)
    if s.dtype not in (np.float32, np.float64):
        s = s.astype(np.float64)
    if m.shape != s.shape or m.ndim != 3:
        raise ValueError(f"masks and maps must be (N, H, W) of the same shape, got {m.shape} and {s.shape}")
    region = np.zeros(m.shape, np.int32)  # 0 = normal, k >= 1 = region id
    sizes: list[npt.NDArray[np.int64]] = []
    n_regions = 0
    for i in np.flatnonzero(m.reshape(len(m), -1).any(axis=1)):
        n_lab, lab = cv2.connectedComponents(m[i].astype(np.uint8), connectivity=8)
        region[i] = np.where(lab > 0, lab + n_regions, 0)
        sizes.append(np.bincount(lab.ravel(), minlength=n_lab)[1:])
        n_regions += n_lab - 1
    n_normal = m.size - int(m.sum())
    if n_regions == 0 or n_normal == 0:
        raise ValueError("AUPRO needs at least one GT region and one normal pixel")
    # each pixel of region k adds 1 / (|region k| · K) to the mean PRO; a normal pixel adds nothing
    weight = np.r_[0.0, 1.0 / (np.concatenate(sizes) * float(n_regions))]
    order = np.argsort(s.ravel(), kind="stable")[::-1]  # descending; the order within ties does not matter
    r_sorted = region.ravel()[order]
    s_sorted = s.ravel()[order]
    del order, region
    # keep the last pixel of each run of equal scores (a threshold takes all ties at once)
    last = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    del s_sorted
    fpr = np.r_[0.0, np.cumsum(r_sorted == 0)[last] / n_normal]
    pro = weight[r_sorted]
    del r_sorted
    pro = np.r_[0.0, np.cumsum(pro, out=pro)[last]]
    if fpr[-1] < fpr_limit:
        fpr = np.r_[fpr, fpr_limit]
        pro = np.r_[pro, pro[-1]]
    cut = int(np.searchsorted(fpr, fpr_limit, side="right"))
    pro_at = float(np.interp(fpr_limit, fpr, pro))
    x = np.r_[fpr[:cut], fpr_limit]
    y = np.r_[pro[:cut], pro_at]
    return float(np.trapezoid(y, x) / fpr_limit)
