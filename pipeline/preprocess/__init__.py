"""The paper's preprocessing (§4.1, §4.4): template matching of the view and ROI masks with a margin,
with a photometric step (its §9 future work) and a local contrast step of ours, applied the same way in
training and serving, each switchable (masked † vs unmasked runs)."""

from pipeline.preprocess.contrast import contrast_frames
from pipeline.preprocess.errors import FrameRejectedError, PreprocessError
from pipeline.preprocess.model import (
    PreprocessedModel,
    calibrate_preprocessed,
    load_preprocessed,
    predict_dataset,
    preprocessor_from_manifest,
    save_preprocessed,
    train_preprocessed,
)
from pipeline.preprocess.preprocessor import PreprocessConfig, PreprocessedBatch, Preprocessor
from pipeline.preprocess.roi import roi_from_polylines, roi_mask, translate, widen_each
from pipeline.preprocess.template import TemplateMatch, ViewTemplate, cut_template, match_template

__all__ = [
    "FrameRejectedError",
    "PreprocessConfig",
    "PreprocessError",
    "PreprocessedBatch",
    "PreprocessedModel",
    "Preprocessor",
    "TemplateMatch",
    "ViewTemplate",
    "calibrate_preprocessed",
    "contrast_frames",
    "cut_template",
    "load_preprocessed",
    "match_template",
    "predict_dataset",
    "preprocessor_from_manifest",
    "roi_from_polylines",
    "roi_mask",
    "save_preprocessed",
    "train_preprocessed",
    "translate",
    "widen_each",
]
