"""One vehicle of the twin: its random variation, its defects, and its raycasting scene."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import open3d as o3d
from scipy.spatial import cKDTree

from calibration.meshio import vertex_normals
from calibration.underbody import Seam
from pipeline.twin import surface
from pipeline.twin.bead import BeadParams, build_bead, centerline_offset_m, seam_frames
from pipeline.twin.defects import DEFECT_TYPES, DefectSpec, DefectType, sample_defect

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]

#: Paint colours of underbodies (linear RGB albedo): e-coat grey, white, black, red, blue, silver.
BODY_COLOURS: tuple[tuple[float, float, float], ...] = (
    (0.30, 0.31, 0.32), (0.62, 0.62, 0.60), (0.08, 0.08, 0.09), (0.45, 0.07, 0.06), (0.08, 0.14, 0.35),
    (0.45, 0.46, 0.48),
)
#: Sealant colours: light grey PVC, beige, off-white.
SEALANT_COLOURS: tuple[tuple[float, float, float], ...] = ((0.55, 0.56, 0.55), (0.62, 0.57, 0.47), (0.70, 0.70, 0.66))
INTERIOR_ALBEDO = (0.02, 0.02, 0.025)
TRI_PANEL = -1
TRI_INTERIOR = -2


@dataclass(frozen=True, slots=True)
class VehicleSpec:
    """Everything random about one vehicle. Drawn deterministically from (seed, index)."""

    vehicle_id: str
    index: int
    body_rgb: tuple[float, float, float]
    sealant_rgb: tuple[float, float, float]
    beads: tuple[BeadParams, ...]
    defects: tuple[DefectSpec, ...]
    light_gain: float
    exposure: float
    specular: float
    shininess: float
    noise_sigma: float  # read noise, in [0, 1] intensity units

    def with_defects(self, defects: Sequence[DefectSpec]) -> VehicleSpec:
        """The same vehicle (same variation) with other defects; used to render defect-free twins."""
        return VehicleSpec(
            self.vehicle_id, self.index, self.body_rgb, self.sealant_rgb, self.beads, tuple(defects),
            self.light_gain, self.exposure, self.specular, self.shininess, self.noise_sigma,
        )


def sample_vehicle(
    seed: int, index: int, seams: Sequence[Seam], defect_types: Sequence[DefectType] | None = None
) -> VehicleSpec:
    """Draw vehicle ``index`` of the stream ``seed``.

    ``defect_types``: the defects to plant, one per entry, each on a random seam. ``None`` draws
    0 to 2 defects of random types (a third of vehicles are normal).
    """
    rng = np.random.default_rng([seed, index, 1])
    beads = tuple(
        BeadParams(
            width_scale=float(rng.normal(1.0, 0.05)),
            height_scale=float(rng.normal(1.0, 0.06)),
            offset_mm=float(rng.normal(0.0, 0.6)),
            wobble_mm=float(rng.uniform(0.0, 0.5)),
            wobble_phase_rad=float(rng.uniform(0, 2 * np.pi)),
        )
        for _ in seams
    )
    if defect_types is None:
        n = int(rng.choice([0, 1, 1, 2]))
        defect_types = [DEFECT_TYPES[int(k)] for k in rng.integers(0, len(DEFECT_TYPES), n)]
    defects = []
    for k, dtype in enumerate(defect_types):
        seam = seams[int(rng.integers(0, len(seams)))]
        defects.append(
            sample_defect(rng, f"v{index:05d}-d{k}", dtype, seam.seam_id, seam.length_m, seam.bead_width_mm)
        )
    body = np.asarray(BODY_COLOURS[int(rng.integers(0, len(BODY_COLOURS)))]) * rng.uniform(0.9, 1.1)
    sealant = np.asarray(SEALANT_COLOURS[int(rng.integers(0, len(SEALANT_COLOURS)))]) * rng.uniform(0.92, 1.08)
    return VehicleSpec(
        vehicle_id=f"V{seed:03d}-{index:05d}",
        index=index,
        body_rgb=(float(body[0]), float(body[1]), float(body[2])),
        sealant_rgb=(float(sealant[0]), float(sealant[1]), float(sealant[2])),
        beads=beads,
        defects=tuple(defects),
        light_gain=float(rng.uniform(0.8, 1.2)),
        exposure=float(rng.uniform(0.85, 1.15)),
        specular=float(rng.uniform(0.15, 0.5)),
        shininess=float(rng.uniform(20.0, 80.0)),
        noise_sigma=float(rng.uniform(0.006, 0.014)),
    )


@dataclass(frozen=True, slots=True, eq=False)
class DefectRegion:
    """Ground truth of one defect as a tube (or ball) around sample points in the vehicle frame."""

    spec: DefectSpec
    centers_m: F64  # (K, 3)
    radius_m: float
    centroid_m: F64  # (3,)
    tree: cKDTree = field(repr=False)

    def contains(self, p_vehicle_m: npt.NDArray[np.floating]) -> npt.NDArray[np.bool_]:
        """Which points (N, 3) lie inside the region. NaN points never do."""
        out = np.zeros(len(p_vehicle_m), dtype=bool)
        lo = self.centers_m.min(axis=0) - self.radius_m
        hi = self.centers_m.max(axis=0) + self.radius_m
        x = p_vehicle_m[:, 0]
        cand = np.flatnonzero((x >= lo[0]) & (x <= hi[0]))  # cheap 1D cut first, then the box
        cand = cand[np.all((p_vehicle_m[cand] >= lo) & (p_vehicle_m[cand] <= hi), axis=1)]
        if len(cand):
            d, _ = self.tree.query(p_vehicle_m[cand].astype(np.float64), k=1, distance_upper_bound=self.radius_m)
            out[cand] = np.isfinite(d)
        return out


def defect_region(spec: DefectSpec, seam: Seam, bead: BeadParams) -> DefectRegion:
    """The ground-truth region of ``spec`` on ``seam`` for a vehicle with bead variation ``bead``."""
    W = seam.bead_width_mm / 1000.0 * bead.width_scale
    H = seam.bead_height_mm / 1000.0 * bead.height_scale
    lift = H / 2
    if spec.defect_type == "hole":
        s = np.array([spec.s_center_m])
        p, lat = seam_frames(seam, s)
        u = centerline_offset_m(bead, s) + spec.offset_mm / 1000.0
        xy = p[:, :2] + u[:, None] * lat[:, :2]
        radius = spec.length_m / 2 + 0.0015 + lift
    else:
        margin = 0.002
        s = np.arange(max(0.0, spec.s_start_m - margin), min(seam.length_m, spec.s_end_m + margin), 0.001)
        p, lat = seam_frames(seam, s)
        xy = p[:, :2] + centerline_offset_m(bead, s)[:, None] * lat[:, :2]
        lateral = spec.region_radius_m(W, 0.0)
        radius = float(np.hypot(lateral, lift + 0.001))
    z = surface.height_m(xy[:, 0], xy[:, 1])
    centers = np.concatenate([xy, z[:, None]], axis=1) + lift * surface.normal(xy[:, 0], xy[:, 1])
    return DefectRegion(spec, centers, float(radius), centers.mean(axis=0), cKDTree(centers))


@dataclass(frozen=True, slots=True, eq=False)
class VehicleScene:
    """A vehicle ready to render: combined mesh, per-vertex albedo and normals, labels, BVH."""

    spec: VehicleSpec
    vertices_m: F32
    triangles: npt.NDArray[np.int32]
    vertex_attr: F32  # (V, 6): unit normal (3) then linear albedo RGB (3)
    triangle_seam: npt.NDArray[np.int16]  # seam index, or TRI_PANEL / TRI_INTERIOR
    regions: tuple[DefectRegion, ...]
    bounds_lo_m: F32  # (3,) axis-aligned bounds of all geometry
    bounds_hi_m: F32
    raycaster: o3d.t.geometry.RaycastingScene = field(repr=False)


def build_scene(spec: VehicleSpec, seams: Sequence[Seam], panel: surface.PanelMesh) -> VehicleScene:
    """Assemble panel, interior and this vehicle's beads into one raycasting scene."""
    seam_index = {s.seam_id: i for i, s in enumerate(seams)}
    by_seam: dict[int, list[DefectSpec]] = {}
    for d in spec.defects:
        if d.seam_id not in seam_index:
            raise ValueError(f"defect {d.defect_id}: unknown seam {d.seam_id!r}")
        by_seam.setdefault(seam_index[d.seam_id], []).append(d)

    verts: list[F64] = [panel.vertices_m]
    tris: list[npt.NDArray[np.int32]] = [panel.triangles]
    rgb: list[F64] = [panel.albedo[:, None].astype(np.float64) * np.asarray(spec.body_rgb)]
    labels: list[npt.NDArray[np.int16]] = [np.full(len(panel.triangles), TRI_PANEL, np.int16)]
    offset = len(panel.vertices_m)

    interior = np.array([[-surface.HALF_L, -surface.HALF_W], [surface.HALF_L, -surface.HALF_W],
                         [surface.HALF_L, surface.HALF_W], [-surface.HALF_L, surface.HALF_W]])
    verts.append(np.concatenate([interior, np.full((4, 1), surface.INTERIOR_Z_M)], axis=1))
    tris.append(np.array([[0, 1, 2], [0, 2, 3]], np.int32) + offset)
    rgb.append(np.tile(INTERIOR_ALBEDO, (4, 1)))
    labels.append(np.full(2, TRI_INTERIOR, np.int16))
    offset += 4

    for i, seam in enumerate(seams):
        bead = build_bead(seam, spec.beads[i], by_seam.get(i, []), rng_seed=spec.index * 1000 + i)
        verts.append(bead.vertices_m)
        tris.append(bead.triangles + offset)
        rgb.append(bead.albedo[:, None].astype(np.float64) * np.asarray(spec.sealant_rgb))
        labels.append(np.full(len(bead.triangles), i, np.int16))
        offset += len(bead.vertices_m)

    v = np.concatenate(verts)
    t = np.concatenate(tris)
    normals = vertex_normals(v, t, facing=(0.0, 0.0, -1.0))  # towards the cameras below
    rc = o3d.t.geometry.RaycastingScene()
    rc.add_triangles(
        o3d.core.Tensor.from_numpy(v.astype(np.float32)), o3d.core.Tensor.from_numpy(t.astype(np.uint32))
    )
    regions = tuple(
        defect_region(d, seams[seam_index[d.seam_id]], spec.beads[seam_index[d.seam_id]]) for d in spec.defects
    )
    return VehicleScene(
        spec=spec,
        vertices_m=v.astype(np.float32),
        triangles=t,
        vertex_attr=np.concatenate([normals, np.concatenate(rgb)], axis=1).astype(np.float32),
        triangle_seam=np.concatenate(labels),
        regions=regions,
        bounds_lo_m=(v.min(axis=0) - 1e-3).astype(np.float32),
        bounds_hi_m=(v.max(axis=0) + 1e-3).astype(np.float32),
        raycaster=rc,
    )
