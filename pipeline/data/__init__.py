"""Datasets for the model zoo: MVTec-AD-layout folders and small in-memory sets rendered by the twin."""

from pipeline.data.mvtec import AnomalySet, MvtecSplits, read_mvtec
from pipeline.data.twinset import TwinSetPlan, render_twin_splits

__all__ = ["AnomalySet", "MvtecSplits", "TwinSetPlan", "read_mvtec", "render_twin_splits"]
