"""The model zoo: one contract (uint8 NHWC in → image scores + anomaly maps out), a registry,
artifacts (weights + ONNX + manifest), runtimes (PyTorch eager, ONNX Runtime)."""

from pipeline.models.api import TrainedModel, calibrate, fit_calibration, load_model, predict_all, save, train
from pipeline.models.contract import Prediction, ScoreCalibration, check_batch
from pipeline.models.errors import ArtifactError, ConfigError, InputError, ModelError, TrainingError
from pipeline.models.registry import MODELS, get_entry, make_config
from pipeline.models.runtime import InferenceModel, OnnxRuntime, TorchRuntime
from pipeline.models.training import FitContext

__all__ = [
    "MODELS",
    "ArtifactError",
    "ConfigError",
    "FitContext",
    "InferenceModel",
    "InputError",
    "ModelError",
    "OnnxRuntime",
    "Prediction",
    "ScoreCalibration",
    "TorchRuntime",
    "TrainedModel",
    "TrainingError",
    "calibrate",
    "check_batch",
    "fit_calibration",
    "get_entry",
    "load_model",
    "make_config",
    "predict_all",
    "save",
    "train",
]
