"""Small twin sets for the model tests: normal frames of one camera and a planted defect, with views
anywhere along the pass (``small_set``) or aligned at one conveyor station (``aligned``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest
import torch

from pipeline.twin import DigitalTwin

torch.set_num_threads(2)


@dataclass(frozen=True)
class SmallSet:
    train: npt.NDArray[np.uint8]        # (N, 240, 320, 3) normal frames
    normal_test: npt.NDArray[np.uint8]  # (M, 240, 320, 3) normal frames of unseen vehicles
    defect: npt.NDArray[np.uint8]       # (1, 240, 320, 3) a normal frame with a planted defect
    defect_mask: npt.NDArray[np.bool_]  # (1, 240, 320)


def _plant(frame: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    """A 12x12 px magenta blob (a foreign deposit) on a copy of ``frame``: (1, H, W, 3) and its (1, H, W) mask."""
    defect = frame.copy()
    mask = np.zeros(defect.shape[:2], bool)
    mask[100:112, 150:162] = True
    defect[mask] = (255, 0, 255)
    return defect[None], mask[None]


@pytest.fixture(scope="session")
def small_set(small_twin: DigitalTwin) -> SmallSet:
    rng = np.random.default_rng(0)
    cam = "lower"

    def frames(vehicle: int, n: int) -> list[npt.NDArray[np.uint8]]:
        scene = small_twin.vehicle(vehicle, defect_types=[])
        out = []
        for _ in range(n):
            s = float(rng.uniform(-1.2, 1.2))
            out.append(small_twin.render(scene, s, camera_ids=[cam]).frameset.frames[0].image)
        return out

    train = np.stack(frames(0, 3) + frames(1, 3) + frames(2, 3))
    normal_test = np.stack(frames(3, 2) + frames(4, 2))
    return SmallSet(train, normal_test, *_plant(normal_test[0]))


@pytest.fixture(scope="session")
def aligned(small_twin: DigitalTwin) -> SmallSet:
    """8 training vehicles and 3 unseen ones, 'lower' camera at s = 0.2 m ± 3 cm; a 12x12 px magenta
    blob (a foreign deposit, as in ``small_set``) planted on the first unseen frame."""
    rng = np.random.default_rng(0)
    frames = []
    for vehicle in range(11):
        s_m = 0.2 + float(rng.uniform(-0.03, 0.03))
        sample = small_twin.render(small_twin.vehicle(vehicle, defect_types=[]), s_m, camera_ids=["lower"])
        frames.append(sample.frameset.frames[0].image)
    return SmallSet(np.stack(frames[:8]), np.stack(frames[8:]), *_plant(frames[8]))
