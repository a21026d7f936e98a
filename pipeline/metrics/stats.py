"""Across seeds: mean ± std, paired t-tests between models, Benjamini–Hochberg FDR control."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import numpy.typing as npt
from scipy import stats


@dataclass(frozen=True, slots=True)
class MeanStd:
    mean: float
    std: float
    n: int

    def __str__(self) -> str:
        return f"{100 * self.mean:.1f} ± {100 * self.std:.1f}"


def mean_std(values: Sequence[float]) -> MeanStd:
    """Mean and sample standard deviation (ddof = 1; 0 for a single value)."""
    a = np.asarray(values, np.float64)
    return MeanStd(float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0, len(a))


def benjamini_hochberg(p_values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """BH-adjusted p-values (same order as the input)."""
    p = np.asarray(p_values, np.float64)
    if p.size == 0:
        return p
    adjusted: npt.NDArray[np.float64] = stats.false_discovery_control(p, method="bh")
    return adjusted


@dataclass(frozen=True, slots=True)
class PairedTest:
    model_a: str
    model_b: str
    mean_diff: float
    t: float
    p: float
    p_bh: float


def paired_tests(results: Mapping[str, Sequence[float]]) -> list[PairedTest]:
    """Paired t-tests of every model pair over matched runs (same seeds/views, same order), BH-corrected.

    Raises:
        ValueError: models with different numbers of runs, or fewer than 2 runs.
    """
    names = sorted(results)
    lengths = {len(results[n]) for n in names}
    if len(lengths) != 1 or min(lengths) < 2:
        raise ValueError(f"paired tests need the same number (>= 2) of matched runs per model, got {lengths}")
    raw = []
    for a, b in combinations(names, 2):
        x, y = np.asarray(results[a], float), np.asarray(results[b], float)
        d = x - y
        if np.allclose(d, d[0]):  # constant difference: t undefined; p = 0 if non-zero, else 1
            t, p = (np.inf if d[0] else 0.0), (0.0 if d[0] else 1.0)
        else:
            res = stats.ttest_rel(x, y)
            t, p = float(res.statistic), float(res.pvalue)
        raw.append((a, b, float(d.mean()), float(t), float(p)))
    adj = benjamini_hochberg([r[4] for r in raw])
    return [PairedTest(a, b, md, t, p, float(q)) for (a, b, md, t, p), q in zip(raw, adj, strict=True)]
