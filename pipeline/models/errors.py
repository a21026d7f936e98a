"""Errors of the model zoo.

::

    ModelError                  anything the model zoo reports to a caller
    ├── InputError              a batch of the wrong shape, dtype or size
    ├── ArtifactError           a missing, corrupt or mismatched artifact directory
    ├── ConfigError             an unknown model, preset, runtime or option
    └── TrainingError           fitting failed (no data, non-finite loss)

Adapters (CLI, server) map :class:`ModelError` to one-line messages; ``raise ... from`` keeps the cause.
"""

from __future__ import annotations


class ModelError(Exception):
    """Base class of every error raised by :mod:`pipeline.models`."""


class InputError(ModelError, ValueError):
    """A batch that a model cannot take (shape, dtype, channel count)."""


class ArtifactError(ModelError):
    """An artifact directory that is missing files, corrupt, or disagrees with its manifest."""


class ConfigError(ModelError, ValueError):
    """An unknown model name, preset, runtime or an invalid option."""


class TrainingError(ModelError):
    """Fitting failed: too few images or a non-finite loss."""
