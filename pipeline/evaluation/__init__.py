"""The paper's evaluation figures: ROC/PR curves, heatmap grids and misclassified samples."""

from pipeline.evaluation.report import Predictions, heatmap_grid, misclassified, roc_pr_figure, write_report

__all__ = ["Predictions", "heatmap_grid", "misclassified", "roc_pr_figure", "write_report"]
