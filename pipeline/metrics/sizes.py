"""Size-aware false-negative analysis: view-specific tertiles of the GT area ratio (Eqs. 14–15)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class SizeTertiles:
    """For one view: bin edges b1, b2 of area_ratio and the false negatives in each bin."""

    view: str
    b1: float
    b2: float
    fn_small: int
    fn_medium: int
    fn_large: int
    n_small: int
    n_medium: int
    n_large: int


def area_ratio(mask: npt.ArrayLike) -> float:
    """Share of the image's pixels that are defect pixels (Eq. 14)."""
    m = np.asarray(mask)
    return float(np.count_nonzero(m) / m.size)


def fn_size_tertiles(views: list[str], area_ratios: npt.ArrayLike, missed: npt.ArrayLike) -> list[SizeTertiles]:
    """Per view: tertile edges over the anomalous test images' area ratios, and FN counts per bin.

    ``views``, ``area_ratios`` and ``missed`` (bool: the image was a false negative) describe the
    anomalous test images only. Bins: small ≤ b1 < medium ≤ b2 < large.
    """
    a = np.asarray(area_ratios, np.float64)
    fn = np.asarray(missed, bool)
    v = np.asarray(views)
    out = []
    for view in sorted(set(views)):
        sel = v == view
        av, fv = a[sel], fn[sel]
        b1, b2 = float(np.quantile(av, 0.333)), float(np.quantile(av, 0.667))
        small, large = av <= b1, av > b2
        medium = ~small & ~large
        out.append(SizeTertiles(view, b1, b2, int((fv & small).sum()), int((fv & medium).sum()),
                                int((fv & large).sum()), int(small.sum()), int(medium.sum()), int(large.sum())))
    return out
