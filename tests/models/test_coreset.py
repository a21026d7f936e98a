"""PatchCore's greedy k-center coreset against the textbook algorithm and on separated clusters."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.models.coreset import greedy_coreset


def _textbook(points: np.ndarray, first: int, n: int) -> list[int]:
    """Greedy k-center in float64: repeatedly take the point farthest from those taken."""
    chosen = [first]
    d = np.linalg.norm(points - points[first], axis=1)
    while len(chosen) < n:
        nxt = int(np.argmax(d))
        chosen.append(nxt)
        d = np.minimum(d, np.linalg.norm(points - points[nxt], axis=1))
    return chosen


def test_selection_is_the_textbook_greedy_k_center() -> None:
    pts = np.random.default_rng(0).normal(size=(400, 16))
    got = greedy_coreset(torch.from_numpy(pts).float(), 40, projection_dim=0, seed=3).tolist()
    assert got == _textbook(pts, got[0], 40)
    assert len(set(got)) == 40


def test_one_centre_per_cluster_after_the_random_projection() -> None:
    rng = np.random.default_rng(1)
    centres = rng.normal(scale=50.0, size=(6, 256))
    pts = np.concatenate([c + rng.normal(scale=0.5, size=(80, 256)) for c in centres])
    idx = greedy_coreset(torch.from_numpy(pts).float(), 6, projection_dim=32, seed=0)
    assert sorted(int(i) // 80 for i in idx) == list(range(6))


def test_asking_for_more_than_there_is_returns_every_point_once() -> None:
    pts = torch.randn(10, 4)
    assert sorted(greedy_coreset(pts, 50, projection_dim=0).tolist()) == list(range(10))
