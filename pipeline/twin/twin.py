"""The digital twin of the inspection cell: the default source, the test fixture, the ground truth.

>>> twin = DigitalTwin(TwinConfig(seed=0, width_px=320, height_px=240))
>>> vehicle = twin.vehicle(3, defect_types=["hole"])
>>> sample = twin.render(vehicle, s_m=0.0)          # one synchronised frame set + ground truth
>>> for sample in twin.stream(fps=10, n_vehicles=2): ...   # a live source

Everything is deterministic: the same config gives the same bytes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from calibration.rig import Rig
from calibration.underbody import Seam, UnderbodyModel
from pipeline.frames import Frame, FrameSet
from pipeline.twin import surface
from pipeline.twin.bead import BeadParams, build_bead
from pipeline.twin.defects import DefectType
from pipeline.twin.render import CameraRenderer, ViewRender
from pipeline.twin.rig import default_rig
from pipeline.twin.seams import build_seams
from pipeline.twin.vehicle import VehicleScene, VehicleSpec, build_scene, sample_vehicle

F64 = npt.NDArray[np.float64]
#: Travel beyond the body's half length at which a pass starts and ends (body fully out of view).
PASS_MARGIN_M = 1.3


@dataclass(frozen=True, slots=True)
class TwinConfig:
    """Settings of the twin. The defaults are the CPU-friendly default cell."""

    seed: int = 0
    width_px: int = 640
    height_px: int = 480
    hfov_deg: float = 90.0
    speed_mps: float = 0.1
    panel_step_m: float = 0.006

    def __post_init__(self) -> None:
        if not (16 <= self.width_px <= 8192 and 16 <= self.height_px <= 8192):
            raise ValueError(f"twin image size {self.width_px}x{self.height_px} is out of range (16..8192)")
        if not 30.0 <= self.hfov_deg <= 150.0:
            raise ValueError("twin hfov_deg must be within 30..150")
        if not 0.0 < self.speed_mps <= 2.0:
            raise ValueError("twin speed_mps must be within (0, 2]")
        if not 0.001 <= self.panel_step_m <= 0.05:
            raise ValueError("twin panel_step_m must be within 0.001..0.05")


@dataclass(frozen=True, slots=True, eq=False)
class ViewTruth:
    """Per-pixel ground truth of one view."""

    seam_index: npt.NDArray[np.int16]
    defect_index: npt.NDArray[np.int16]
    depth_true_m: npt.NDArray[np.float32]

    @property
    def defect_mask(self) -> npt.NDArray[np.bool_]:
        return np.asarray(self.defect_index >= 0)


@dataclass(frozen=True, slots=True, eq=False)
class TwinSample:
    """A rendered frame set with its ground truth per camera."""

    frameset: FrameSet
    vehicle: VehicleSpec
    s_m: float
    truth: dict[str, ViewTruth]


class DigitalTwin:
    """The procedural cell: rig, underbody, vehicles and renderer."""

    def __init__(self, config: TwinConfig | None = None, rig: Rig | None = None) -> None:
        self.config = config or TwinConfig()
        c = self.config
        self.rig = rig or default_rig(c.width_px, c.height_px, c.hfov_deg, c.speed_mps)
        self.seams: tuple[Seam, ...] = build_seams()
        self.panel = surface.build_panel(c.panel_step_m, seed=c.seed)
        self._renderers = {cam.camera_id: CameraRenderer(cam) for cam in self.rig.cameras}
        self._scenes: OrderedDict[VehicleSpec, VehicleScene] = OrderedDict()

    # --- model ----------------------------------------------------------------------------
    @cached_property
    def underbody(self) -> UnderbodyModel:
        """The nominal underbody model (floor plus nominal beads), what fusion projects onto."""
        verts = [self.panel.vertices_m]
        tris = [self.panel.triangles]
        offset = len(self.panel.vertices_m)
        for seam in self.seams:
            bead = build_bead(seam, BeadParams(), [], rng_seed=0)
            verts.append(bead.vertices_m)
            tris.append(bead.triangles + offset)
            offset += len(bead.vertices_m)
        return UnderbodyModel("twin-underbody", np.concatenate(verts), np.concatenate(tris), self.seams)

    # --- vehicles -------------------------------------------------------------------------
    def vehicle_spec(self, index: int, defect_types: Sequence[DefectType] | None = None) -> VehicleSpec:
        return sample_vehicle(self.config.seed, index, self.seams, defect_types)

    def vehicle(self, index: int, defect_types: Sequence[DefectType] | None = None) -> VehicleScene:
        """Vehicle ``index`` of this twin's stream, with given or random defects. Cached (a few)."""
        return self.scene(self.vehicle_spec(index, defect_types))

    def scene(self, spec: VehicleSpec) -> VehicleScene:
        key = spec  # the whole spec: a vehicle's colours and lighting depend on the defects it was drawn with
        if key in self._scenes:
            self._scenes.move_to_end(key)
            return self._scenes[key]
        sc = build_scene(spec, self.seams, self.panel)
        self._scenes[key] = sc
        while len(self._scenes) > 4:
            self._scenes.popitem(last=False)
        return sc

    def mesh_truth(self, scene: VehicleScene) -> npt.NDArray[np.int16]:
        """Ground truth on the nominal underbody mesh: per vertex, the index of the defect whose
        region holds it (into ``scene.regions``), or -1."""
        verts = self.underbody.vertices_vehicle_m
        out = np.full(len(verts), -1, dtype=np.int16)
        for k, region in enumerate(scene.regions):
            out[region.contains(verts)] = k
        return out

    # --- rendering ------------------------------------------------------------------------
    def pass_range_m(self) -> tuple[float, float]:
        """Conveyor travel at which a vehicle pass starts and ends."""
        half = surface.HALF_L + PASS_MARGIN_M
        return (-half, half)

    def render(
        self, scene: VehicleScene, s_m: float, seq: int = 0, capture_ts_ns: int = 0,
        camera_ids: Sequence[str] | None = None,
    ) -> TwinSample:
        """Render every (or the named) camera with the vehicle at conveyor travel ``s_m``."""
        T_cell_vehicle = self.rig.conveyor.T_cell_vehicle(s_m)
        frames, truth = [], {}
        for cam_index, cam in enumerate(self.rig.cameras):
            if camera_ids is not None and cam.camera_id not in camera_ids:
                continue
            noise_seed = int(
                np.random.SeedSequence([self.config.seed, scene.spec.index, seq, cam_index]).generate_state(1)[0]
            )
            v: ViewRender = self._renderers[cam.camera_id].render(scene, T_cell_vehicle, noise_seed)
            frames.append(Frame(cam.camera_id, v.rgb, capture_ts_ns, seq, v.depth_m))
            truth[cam.camera_id] = ViewTruth(v.seam_index, v.defect_index, v.depth_true_m)
        fs = FrameSet(seq, capture_ts_ns, tuple(frames), T_cell_vehicle, scene.spec.vehicle_id)
        return TwinSample(fs, scene.spec, float(s_m), truth)

    def nominal_seam_pixels(self, scene: VehicleScene, s_m: float, camera_id: str) -> npt.NDArray[np.bool_]:
        """The pixels of ``camera_id`` that show the vehicle's seams as laid nominally (``scene``'s vehicle
        without its defects) at conveyor travel ``s_m``: the region of interest a line knows from the
        seam plan, not from the frame. A defective frame's own seam pixels lack a missing bead and
        follow a misaligned one, so an ROI drawn from them would carry the ground truth."""
        nominal = self.scene(scene.spec.with_defects([])) if scene.spec.defects else scene
        renderer = self._renderers[camera_id]
        return np.asarray(renderer.seam_index(nominal, self.rig.conveyor.T_cell_vehicle(s_m)) >= 0)

    def stream(
        self, fps: float = 10.0, n_vehicles: int | None = None, start_ts_ns: int = 0, first_vehicle: int = 0,
        camera_ids: Sequence[str] | None = None,
    ) -> Iterator[TwinSample]:
        """A live source: vehicles one after another through the cell, ``fps`` frame sets per second.

        Timestamps advance by exactly ``1/fps``; pacing to the wall clock is the caller's job
        (the server's ingest), which keeps this core free of sleeps. ``n_vehicles=None`` runs forever.
        """
        if not fps > 0:
            raise ValueError("fps must be positive")
        period_ns = round(1e9 / fps)
        step_m = self.config.speed_mps / fps
        s0, s1 = self.pass_range_m()
        seq = 0
        index = first_vehicle
        while n_vehicles is None or index < first_vehicle + n_vehicles:
            scene = self.vehicle(index)
            for s in np.arange(s0, s1, step_m):
                yield self.render(scene, float(s), seq, start_ts_ns + seq * period_ns, camera_ids)
                seq += 1
            index += 1

    def s_centering(self, camera_id: str, p_vehicle_m: F64) -> float:
        """Conveyor travel that brings a vehicle-frame point closest to the camera's optical axis."""
        cam = self.rig.camera(camera_id)
        conv = self.rig.conveyor
        p0 = conv.T_cell_vehicle(0.0)[:3, :3] @ p_vehicle_m + conv.T_cell_vehicle(0.0)[:3, 3]
        c = cam.center_cell_m
        axis_dir = cam.T_cell_cam[:3, 2]
        # minimise the distance of p0 + a*s to the optical axis line: a closed-form least squares
        a = conv.axis_cell
        perp = np.eye(3) - np.outer(axis_dir, axis_dir)
        A = perp @ a
        b = perp @ (p0 - c)
        return float(-(A @ b) / max(float(A @ A), 1e-12))
