"""Every metric of the paper: image and pixel level, AUPRO, IoU-optimal operating point, size tertiles, stats."""

from pipeline.metrics.aupro import aupro
from pipeline.metrics.image import (
    AurocDifference,
    ImageMetrics,
    auroc_by_type,
    auroc_difference,
    auroc_interval,
    image_metrics,
)
from pipeline.metrics.pixel import PixelMetrics, peak_in_defect_by_type, pixel_metrics
from pipeline.metrics.sizes import SizeTertiles, fn_size_tertiles
from pipeline.metrics.stats import MeanStd, PairedTest, benjamini_hochberg, mean_std, paired_tests
from pipeline.metrics.thresholds import OperatingPoint, best_f1_point, best_iou_point

__all__ = [
    "AurocDifference",
    "ImageMetrics",
    "MeanStd",
    "OperatingPoint",
    "PairedTest",
    "PixelMetrics",
    "SizeTertiles",
    "aupro",
    "auroc_by_type",
    "auroc_difference",
    "auroc_interval",
    "benjamini_hochberg",
    "best_f1_point",
    "best_iou_point",
    "fn_size_tertiles",
    "image_metrics",
    "mean_std",
    "paired_tests",
    "peak_in_defect_by_type",
    "pixel_metrics",
]
