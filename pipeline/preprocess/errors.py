"""Errors of the preprocessing stage, inside the model zoo's tree::

    ModelError
    └── InputError
        └── PreprocessError         a template, ROI mask or frame that preprocessing cannot use
            └── FrameRejectedError       a frame whose template match is below the threshold (wrong view)
"""

from __future__ import annotations

from pipeline.models.errors import InputError


class PreprocessError(InputError):
    """A template, ROI mask or frame that preprocessing cannot use."""


class FrameRejectedError(PreprocessError):
    """Frames that do not show the trained view: their template match is below the threshold.

    ``indices`` are the rejected frames of the batch and ``scores`` their match scores.
    """

    def __init__(self, message: str, indices: tuple[int, ...], scores: tuple[float, ...]) -> None:
        super().__init__(message)
        self.indices = indices
        self.scores = scores
