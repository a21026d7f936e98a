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

    Raises:
        ValueError: shapes differ, no GT region, or no normal pixel.
    """
    m = np.asarray(masks, bool)
    s = np.asarray(maps, np.float64)
    if m.shape != s.shape or m.ndim != 3:
        raise ValueError(f"masks and maps must be (N, H, W) of the same shape, got {m.shape} and {s.shape}")
    region = np.zeros(m.shape, np.int64)  # 0 = normal, k >= 1 = region id
    sizes = [0]
    next_id = 1
    for i in range(len(m)):
        if not m[i].any():
            continue
        n_lab, lab = cv2.connectedComponents(m[i].astype(np.uint8), connectivity=8)
        for k in range(1, n_lab):
            sel = lab == k
            region[i][sel] = next_id
            sizes.append(int(sel.sum()))
            next_id += 1
    n_regions = next_id - 1
    n_normal = int((~m).sum())
    if n_regions == 0 or n_normal == 0:
        raise ValueError("AUPRO needs at least one GT region and one normal pixel")
    flat_r = region.ravel()
    flat_s = s.ravel()
    order = np.argsort(-flat_s, kind="stable")
    r_sorted = flat_r[order]
    s_sorted = flat_s[order]
    size_arr = np.asarray(sizes, np.float64)
    d_fpr = np.where(r_sorted == 0, 1.0 / n_normal, 0.0)
    d_pro = np.where(r_sorted > 0, 1.0 / (np.maximum(size_arr[r_sorted], 1.0) * n_regions), 0.0)
    fpr = np.cumsum(d_fpr)
    pro = np.cumsum(d_pro)
    # keep the last pixel of each run of equal scores (a threshold takes all ties at once)
    last = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    fpr = np.r_[0.0, fpr[last]]
    pro = np.r_[0.0, pro[last]]
    if fpr[-1] < fpr_limit:
        fpr = np.r_[fpr, fpr_limit]
        pro = np.r_[pro, pro[-1]]
    cut = int(np.searchsorted(fpr, fpr_limit, side="right"))
    pro_at = float(np.interp(fpr_limit, fpr, pro))
    x = np.r_[fpr[:cut], fpr_limit]
    y = np.r_[pro[:cut], pro_at]
    return float(np.trapezoid(y, x) / fpr_limit)
