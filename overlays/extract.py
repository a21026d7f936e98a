"""Defects on the mesh: threshold the fused map, take connected components, describe each one.

Thresholds (:class:`Thresholds`):

* global: ``score`` for every vertex;
* by seam: ``per_seam[seam_id]`` overrides it for the vertices of that seam;
* spatial hysteresis: vertices at ``grow_ratio * threshold`` or more join a component, and the
  component is kept only when its peak reaches the threshold;
* size-aware (:class:`SizeAwareThreshold`): a small component needs a higher peak, by the
  factor ``clip((ref_area_mm2 / area_mm2) ** gamma, 1, max_factor)``;
* ``min_area_mm2``: smaller components are dropped; ``min_frames``: vertices seen in fewer
  frames of the pass are ignored;
* ``seam_band_mm``: when set, only vertices within this distance of a seam can belong to a
  defect (sealant defects lie on the seams; it keeps edges and openings of the body out).

Components use the mesh adjacency plus "bridges" between selected vertices closer than
``bridge_mm`` (a bead is a separate mesh lying on the floor panel; a missing stretch shows the
floor, and both belong to one defect).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from overlays.errors import DefectError
from overlays.seam_map import SeamMap
from pipeline.fusion import FusedState, FusionMesh

logger = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]


@dataclass(frozen=True, slots=True)
class SizeAwareThreshold:
    """Peak threshold factor for small components: ``clip((ref_area_mm2 / area) ** gamma, 1, max_factor)``."""

    ref_area_mm2: float = 60.0
    gamma: float = 0.25
    max_factor: float = 1.6

    def factor(self, area_mm2: float) -> float:
        if area_mm2 <= 0:
            return self.max_factor
        return float(np.clip((self.ref_area_mm2 / area_mm2) ** self.gamma, 1.0, self.max_factor))


@dataclass(frozen=True, slots=True)
class Thresholds:
    """See the module docstring. Raises :class:`DefectError` on out-of-range values."""

    score: float = 0.5
    per_seam: Mapping[str, float] = field(default_factory=dict)
    grow_ratio: float = 0.8
    size_aware: SizeAwareThreshold | None = field(default_factory=SizeAwareThreshold)
    min_area_mm2: float = 4.0
    min_frames: int = 2
    bridge_mm: float = 3.0
    seam_band_mm: float | None = None

    def __post_init__(self) -> None:
        values = [self.score, *self.per_seam.values()]
        if not all(0.0 < t <= 1.0 for t in values):
            raise DefectError("thresholds must lie in (0, 1]")
        if not 0.0 < self.grow_ratio <= 1.0 or self.min_area_mm2 < 0 or self.min_frames < 1 or self.bridge_mm < 0:
            raise DefectError("need 0 < grow_ratio <= 1, min_area_mm2 >= 0, min_frames >= 1, bridge_mm >= 0")
        if self.seam_band_mm is not None and not self.seam_band_mm > 0:
            raise DefectError("seam_band_mm must be positive (or None for the whole mesh)")


@dataclass(frozen=True, slots=True, eq=False)
class DefectCandidate:
    """One connected component above threshold in one snapshot (units as in :class:`overlays.defect.Defect`)."""

    vertex_index: I32
    centroid_vehicle_m: F64
    normal_vehicle: F64
    extent_mm: F64
    area_mm2: float
    peak_score: float
    mean_score: float
    uncertainty: float
    seam_id: str | None
    s_mm: float | None
    robot_id: str | None
    views: tuple[str, ...]


class DefectExtractor:
    """Turns a :class:`FusedState` into defect candidates on one mesh."""

    def __init__(self, mesh: FusionMesh, seam_map: SeamMap, thresholds: Thresholds | None = None) -> None:
        if len(seam_map.seam_index) != mesh.n_vertices:
            raise DefectError("seam map and mesh have different vertex counts")
        self.mesh = mesh
        self.seam_map = seam_map
        self.thresholds = thresholds or Thresholds()
        th = self.thresholds
        per_seam = np.array([th.per_seam.get(s.seam_id, th.score) for s in seam_map.seams] + [th.score])
        unknown = set(th.per_seam) - {s.seam_id for s in seam_map.seams}
        if unknown:
            raise DefectError(f"per-seam thresholds name unknown seams {sorted(unknown)}")
        self.vertex_threshold: F64 = per_seam[seam_map.seam_index.astype(np.intp)]  # -1 picks the global one
        band = th.seam_band_mm
        self.eligible = seam_map.dist_mm <= band if band is not None else np.ones(mesh.n_vertices, bool)

    def extract(self, state: FusedState) -> list[DefectCandidate]:
        """Candidates of this snapshot, highest peak first."""
        th = self.thresholds
        score = state.score
        if score.shape != (self.mesh.n_vertices,):
            raise DefectError(f"fused state has {score.shape[0]} vertices, the mesh {self.mesh.n_vertices}")
        grow = (score >= th.grow_ratio * self.vertex_threshold) & (state.n_frames >= th.min_frames) & self.eligible
        sel: I32 = np.flatnonzero(grow).astype(np.int32)
        if len(sel) == 0:
            return []
        labels = self._components(sel)
        order = np.argsort(labels, kind="stable")
        bounds = np.flatnonzero(np.diff(labels[order])) + 1
        out = []
        for group in np.split(sel[order], bounds):
            cand = self._describe(group, state)
            if cand is not None:
                out.append(cand)
        out.sort(key=lambda c: -c.peak_score)
        return out

    def _components(self, sel: I32) -> npt.NDArray[np.int32]:
        n = self.mesh.n_vertices
        local = np.full(n, -1, np.int64)
        local[sel] = np.arange(len(sel))
        e = self.mesh.edges
        a, b = local[e[:, 0]], local[e[:, 1]]
        keep = (a >= 0) & (b >= 0)
        rows, cols = [a[keep]], [b[keep]]
        if self.thresholds.bridge_mm > 0 and len(sel) > 1:
            pairs = cKDTree(self.mesh.vertices_vehicle_m[sel]).query_pairs(
                self.thresholds.bridge_mm / 1000.0, output_type="ndarray")
            rows.append(pairs[:, 0].astype(np.int64))
            cols.append(pairs[:, 1].astype(np.int64))
        r, c = np.concatenate(rows), np.concatenate(cols)
        g = coo_matrix((np.ones(len(r), np.int8), (r, c)), shape=(len(sel), len(sel))).tocsr()
        _, labels = connected_components(g, directed=False)
        return np.asarray(labels, dtype=np.int32)

    def _describe(self, idx: I32, state: FusedState) -> DefectCandidate | None:
        th = self.thresholds
        area_w = self.mesh.vertex_area_m2[idx]
        area_mm2 = float(area_w.sum() * 1e6)
        if area_mm2 < th.min_area_mm2:
            return None
        s = state.score[idx].astype(np.float64)
        k = int(np.argmax(s))
        peak = float(s[k])
        need = float(self.vertex_threshold[idx[k]])
        if th.size_aware is not None:
            need = min(1.0, need * th.size_aware.factor(area_mm2))
        if peak < need:
            return None
        p = self.mesh.vertices_vehicle_m[idx]
        w = area_w * s
        w = w / w.sum() if w.sum() > 0 else np.full(len(idx), 1.0 / len(idx))
        normal = (self.mesh.normals_vehicle[idx] * w[:, None]).sum(axis=0)
        nn = float(np.linalg.norm(normal))
        normal = normal / nn if nn > 0 else np.array([0.0, 0.0, -1.0])
        seam_id = s_mm = robot_id = None
        seams = self.seam_map.seam_index[idx]
        on = seams >= 0
        if on.any():
            votes = np.bincount(seams[on], weights=w[on], minlength=len(self.seam_map.seams))
            j = int(np.argmax(votes))
            seam = self.seam_map.seams[j]
            mine = seams == j
            s_mm = float(np.average(self.seam_map.s_mm[idx[mine]], weights=np.maximum(w[mine], 1e-12)))
            seam_id, robot_id = seam.seam_id, seam.robot_id
        return DefectCandidate(
            vertex_index=idx, centroid_vehicle_m=(p * w[:, None]).sum(axis=0), normal_vehicle=normal,
            extent_mm=(p.max(axis=0) - p.min(axis=0)) * 1000.0, area_mm2=area_mm2, peak_score=peak,
            mean_score=float(np.average(s, weights=area_w) if area_w.sum() > 0 else s.mean()),
            uncertainty=float(np.average(state.spread[idx], weights=np.maximum(area_w, 1e-18))),
            seam_id=seam_id, s_mm=s_mm, robot_id=robot_id, views=state.views_of(idx),
        )
