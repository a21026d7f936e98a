"""The paper's evaluation figures for one model on one test set, written as PNG files.

* ``roc_pr.png``: image-level ROC and PR curves (the curves behind Table 4's AUROC and AU-PR);
* ``heatmaps.png``: for a few anomalous test images, the input with a green marker on each defect,
  the ground-truth mask and the predicted heatmap with the IoU of the thresholded map (Figs 9–11);
* ``misclassified.png``: the false negatives and false positives at the image operating point, in
  the same layout with a note on each row (Figs 12–14).

Figures are drawn on matplotlib ``Figure`` objects (the Agg canvas: no display, no pyplot state).
Everything here takes arrays in and writes files out; computing the predictions is the caller's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True, eq=False)
class Predictions:
    """One model on one test set: ``images`` (N, H, W, 3) uint8 RGB, ``masks`` (N, H, W) bool GT,
    ``labels`` (N,) bool, ``scores`` (N,), ``maps`` (N, H, W) float; ``types`` name each image's defect
    type ("good" for normal ones). ``image_threshold`` is the image-level operating point and
    ``pixel_threshold`` the pixel-level one (the IoU-maximising threshold)."""

    images: U8
    masks: Mask
    labels: npt.NDArray[np.bool_]
    scores: npt.NDArray[np.floating]
    maps: F32
    types: tuple[str, ...]
    image_threshold: float
    pixel_threshold: float
    title: str = ""
    names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        n = len(self.images)
        if not (len(self.masks) == len(self.labels) == len(self.scores) == len(self.maps) == len(self.types) == n):
            raise ValueError("predictions: images, masks, labels, scores, maps and types must have one entry each")
        if self.maps.shape[:3] != self.masks.shape or self.images.shape[:3] != self.masks.shape:
            raise ValueError(f"predictions: maps {self.maps.shape} and images {self.images.shape} must match "
                             f"the masks {self.masks.shape}")


def write_report(pred: Predictions, out_dir: str | Path, max_rows: int = 6) -> dict[str, str]:
    """Write the three figures into ``out_dir`` (created); returns {figure: path}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"roc_pr": out / "roc_pr.png", "heatmaps": out / "heatmaps.png", "misclassified": out / "misclassified.png"}
    roc_pr_figure({pred.title or "model": (pred.labels, pred.scores)}, paths["roc_pr"])
    anomalous = [int(i) for i in np.flatnonzero(pred.labels)]
    # one row per defect type first, then the rest, so the grid shows every type it can
    by_type: dict[str, int] = {}
    for i in anomalous:
        by_type.setdefault(pred.types[i], i)
    rows = list(by_type.values()) + [i for i in anomalous if i not in by_type.values()]
    heatmap_grid(pred, [(i, pred.types[i]) for i in rows[:max_rows]], paths["heatmaps"])
    heatmap_grid(pred, misclassified(pred)[:max_rows], paths["misclassified"],
                 empty_note="no misclassified images at the operating point")
    return {k: str(v) for k, v in paths.items()}


def misclassified(pred: Predictions) -> list[tuple[int, str]]:
    """(index, note) of the false negatives, then the false positives, at the image operating point.

    A false positive's note says where its map peaks: on a highlight, on an edge, or elsewhere.
    """
    flagged = pred.scores >= pred.image_threshold
    rows = [(int(i), f"missed {pred.types[i]} (FN)") for i in np.flatnonzero(pred.labels & ~flagged)]
    rows += [(int(i), "normal flagged (FP): " + _fp_note(pred, int(i))) for i in np.flatnonzero(~pred.labels & flagged)]
    return rows


def roc_pr_figure(curves: dict[str, tuple[npt.ArrayLike, npt.ArrayLike]], path: str | Path) -> None:
    """ROC and PR curves of several models side by side: ``curves`` = {name: (labels, scores)}."""
    fig = Figure(figsize=(9, 4))
    roc, pr = fig.subplots(1, 2)
    for name, (labels, scores) in curves.items():
        y, s = np.asarray(labels, bool), np.asarray(scores, np.float64)
        fpr, tpr, _ = roc_curve(y, s)
        precision, recall, _ = precision_recall_curve(y, s)
        roc.plot(fpr, tpr, label=name)
        pr.plot(recall, precision, label=name)
    roc.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (image level)", xlim=(0, 1),
            ylim=(0, 1.02))
    pr.set(xlabel="recall", ylabel="precision", title="PR (image level)", xlim=(0, 1), ylim=(0, 1.02))
    for ax in (roc, pr):
        ax.legend(loc="lower right", fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def heatmap_grid(pred: Predictions, rows: list[tuple[int, str]], path: str | Path, empty_note: str = "") -> None:
    """Rows of (input with green defect markers, GT mask, heatmap with its IoU), each labelled."""
    n = max(len(rows), 1)
    fig = Figure(figsize=(9, 2.4 * n))
    axes = fig.subplots(n, 3, squeeze=False)
    if not rows:
        for ax in axes[0]:
            ax.axis("off")
        axes[0][1].text(0.5, 0.5, empty_note, ha="center", va="center")
    for r, (i, note) in enumerate(rows):
        gt, heat = pred.masks[i], pred.maps[i]
        hit = heat >= pred.pixel_threshold
        union = int((hit | gt).sum())
        iou = f"IoU {int((hit & gt).sum()) / union:.2f}" if gt.any() and union else ""
        axes[r][0].imshow(_marked(pred.images[i], gt))
        axes[r][1].imshow(gt, cmap="gray", vmin=0, vmax=1)
        axes[r][2].imshow(heat, cmap="jet", vmin=0, vmax=max(float(pred.pixel_threshold) * 2, float(heat.max()), 1e-6))
        name = pred.names[i] if pred.names else f"#{i}"
        axes[r][0].set_title(f"{name}: {note} (score {float(pred.scores[i]):.3g})", fontsize=8, loc="left")
        axes[r][1].set_title("ground truth", fontsize=8)
        axes[r][2].set_title(f"heatmap {iou}".strip(), fontsize=8)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    if pred.title:
        fig.suptitle(pred.title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _marked(image: U8, gt: Mask) -> U8:
    """The input with a green circle around each ground-truth component (the paper's green indicators)."""
    out = np.ascontiguousarray(image.copy())
    n, _, stats, centroids = cv2.connectedComponentsWithStats(gt.astype(np.uint8))
    for k in range(1, n):
        radius = int(max(stats[k, cv2.CC_STAT_WIDTH], stats[k, cv2.CC_STAT_HEIGHT]) / 2 + 6)
        cx, cy = (round(float(v)) for v in centroids[k])
        cv2.circle(out, (cx, cy), radius, (0, 255, 0), 1)
    return out


def _fp_note(pred: Predictions, i: int) -> str:
    """Where a false positive's peak lies: on a bright (specular) spot or a strong edge, or elsewhere."""
    y, x = np.unravel_index(int(np.argmax(pred.maps[i])), pred.maps[i].shape)
    grey = cv2.cvtColor(pred.images[i], cv2.COLOR_RGB2GRAY)
    if grey[y, x] >= np.quantile(grey, 0.99):
        return "peak on a highlight"
    edges = cv2.Canny(grey, 50, 150)
    y0, x0 = max(0, y - 2), max(0, x - 2)
    if edges[y0:y + 3, x0:x + 3].any():
        return "peak on an edge"
    return f"peak at ({x}, {y})"
