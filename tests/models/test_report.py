"""The paper's figures from hand-made predictions: the misclassified rows are the right ones, with notes,
and every figure is a real PNG image."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.evaluation import Predictions, misclassified, write_report


def _predictions() -> Predictions:
    rng = np.random.default_rng(0)
    n, h, w = 6, 48, 64
    images = rng.integers(60, 120, (n, h, w, 3), dtype=np.uint8)
    masks = np.zeros((n, h, w), bool)
    masks[4, 10:16, 20:30] = True  # found
    masks[5, 30:34, 40:44] = True  # missed
    maps = rng.uniform(0, 0.2, (n, h, w)).astype(np.float32)
    maps[4][masks[4]] = 1.0
    images[2, 5:9, 5:9] = 255  # a highlight where normal image 2 peaks
    maps[2, 6, 6] = 0.9
    labels = np.array([False, False, False, False, True, True])
    scores = np.array([0.1, 0.15, 0.9, 0.2, 1.0, 0.3])
    types = ("good", "good", "good", "good", "hole", "missing")
    return Predictions(images, masks, labels, scores, maps, types, image_threshold=0.5, pixel_threshold=0.5,
                       title="hand-made", names=tuple(f"{i:03d}" for i in range(n)))


def test_misclassified_rows_are_the_false_negatives_then_the_false_positives() -> None:
    rows = misclassified(_predictions())
    assert rows == [(5, "missed missing (FN)"), (2, "normal flagged (FP): peak on a highlight")]


def test_every_figure_is_written(tmp_path: Path) -> None:
    paths = write_report(_predictions(), tmp_path / "report")
    assert set(paths) == {"roc_pr", "heatmaps", "misclassified"}
    for p in paths.values():
        img = cv2.imread(p)
        assert img is not None and img.shape[1] >= 800 and img.std() > 10


def test_mismatched_arrays_are_refused() -> None:
    p = _predictions()
    with pytest.raises(ValueError, match="one entry each"):
        Predictions(p.images, p.masks, p.labels[:3], p.scores, p.maps, p.types, 0.5, 0.5)
    with pytest.raises(ValueError, match="must match"):
        Predictions(p.images, p.masks, p.labels, p.scores, p.maps[:, :10], p.types, 0.5, 0.5)
