"""Datasets for the model zoo: MVTec-AD-layout folders and small in-memory sets rendered by the twin.

The names load on first use (PEP 562): reading a folder needs no renderer, so ``read_mvtec`` imports
without the twin's open3d.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.data.mvtec import AnomalySet, MvtecSplits, read_mvtec
    from pipeline.data.twinset import TwinSetPlan, render_twin_splits

_HOME = {"AnomalySet": "mvtec", "MvtecSplits": "mvtec", "read_mvtec": "mvtec",
         "TwinSetPlan": "twinset", "render_twin_splits": "twinset"}
__all__ = ["AnomalySet", "MvtecSplits", "TwinSetPlan", "read_mvtec", "render_twin_splits"]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
