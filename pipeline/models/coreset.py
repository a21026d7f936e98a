"""Greedy k-center coreset (PatchCore's minimax facility location) on a random projection."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)


@torch.no_grad()
def greedy_coreset(features: torch.Tensor, n_select: int, projection_dim: int = 128, seed: int = 0,
                   progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Indices (n_select,) of a greedy k-center subset of ``features`` (M, C).

    Distances are measured after a random Gaussian projection to ``projection_dim`` (Johnson-
    Lindenstrauss), which keeps the selection close to the exact one at a fraction of the cost.
    """
    m = int(features.shape[0])
    n_select = max(1, min(n_select, m))
    g = torch.Generator().manual_seed(seed)
    if projection_dim and features.shape[1] > projection_dim:
        proj = torch.randn(features.shape[1], projection_dim, generator=g) / projection_dim**0.5
        z = features @ proj.to(features)
    else:
        z = features
    sq = (z * z).sum(1)

    def dist2_to(c: int) -> torch.Tensor:  # ||z - z_c||² as one mat-vec: no (M, C) temporary per step
        d: torch.Tensor = (sq - 2.0 * (z @ z[c]) + sq[c]).clamp_min_(0.0)
        return d

    start = int(torch.randint(m, (1,), generator=g).item())
    selected = torch.empty(n_select, dtype=torch.long)
    selected[0] = start
    min_d = dist2_to(start)
    for i in range(1, n_select):
        nxt = int(torch.argmax(min_d).item())
        selected[i] = nxt
        torch.minimum(min_d, dist2_to(nxt), out=min_d)
        if progress is not None and i % 256 == 0:
            progress(i, n_select)
    return selected
