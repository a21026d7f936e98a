"""Errors of late fusion.

::

    FusionError (ValueError)      bad input to fusion: heatmap shape/dtype/range, unknown camera,
                                  a pose off the conveyor line, an empty mesh
"""

from __future__ import annotations


class FusionError(ValueError):
    """Invalid input to the fusion stage; the message names the camera or field at fault."""
