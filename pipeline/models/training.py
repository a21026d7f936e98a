"""Glue shared by the fit functions: the fit context, seeding, batching of uint8 images."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pipeline.models.contract import U8, to_network_input

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, eq=False)
class InputSources:
    """The frames a model's training inputs were made from, and the step that makes them.

    With a preprocessing step that changes what a model sees (the local contrast), a synthetic defect
    drawn on the model's input differs from a real one, which reaches the model through that step. A
    model that plants synthetic defects (SeamSeg) can draw them on ``frame(i)`` instead, the frame
    input ``i`` was made from ((H, W, 3) uint8 in the input's coordinates; made on demand, so that no
    copy of the training set is kept), and make its training input with ``to_input(i, frame)``, as the
    preprocessing made input ``i``. ``count``: how many inputs there are.
    """

    count: int
    frame: Callable[[int], U8]
    to_input: Callable[[int, U8], U8]


@dataclass(frozen=True, slots=True)
class FitContext:
    """What every ``fit`` gets besides its config and the normal images.

    ``progress(done, total)`` is called as training advances (a CLI draws a bar from it).
    ``val_normal`` are held-out normal images (N, H, W, 3) for the methods that normalise maps on
    them (EfficientAD); without them those methods use a slice of the training images.
    ``backbone_weights`` is a local torchvision-format state dict; ``None`` = random init.
    ``sources``: what the training images were made from (set by the preprocessing; see
    :class:`InputSources`), None when they are the frames themselves.
    """

    seed: int = 0
    device: str = "cpu"
    progress: Callable[[int, int], None] | None = None
    val_normal: U8 | None = None
    backbone_weights: Path | None = None
    max_steps: int | None = None
    extras: dict[str, float] = field(default_factory=dict)
    sources: InputSources | None = None

    def tick(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(done, total)

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU) for a reproducible fit."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def to_input_tensor(images: U8, input_size_wh: tuple[int, int], device: str = "cpu") -> torch.Tensor:
    """(N, H, W, 3) uint8 → (N, 3, h, w) float32 0..255 at the input size."""
    return torch.from_numpy(to_network_input(images, input_size_wh)).to(device)


def iter_batches(images: U8, input_size_wh: tuple[int, int], batch_size: int,
                 device: str = "cpu") -> Iterator[torch.Tensor]:
    """Consecutive batches of network inputs, in order."""
    for i in range(0, len(images), batch_size):
        yield to_input_tensor(images[i:i + batch_size], input_size_wh, device)
