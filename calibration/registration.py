"""Underbody registration: align the underbody mesh (vehicle frame) to depth point clouds (cell frame).

The depth images of the rig's RGB-D cameras are back-projected into the cell frame. The mesh is
sampled to a point cloud with normals. An initial ``T_cell_vehicle`` comes from a few picked
correspondences (Kabsch, >= 3 non-collinear pairs) or from a coarse global registration (FPFH
features + RANSAC, open3d). Point-to-plane ICP then refines it, coarse to fine. The result
reports open3d's fitness (share of cloud points with a mesh point within the final distance)
and inlier RMSE (metres).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import open3d as o3d

from calibration.camera import CameraModel
from calibration.errors import CalibrationInputError, SolveError
from calibration.se3 import invert, make_T, transform_points
from calibration.underbody import UnderbodyModel

log = logging.getLogger(__name__)
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, eq=False)
class RegistrationResult:
    """``T_cell_vehicle`` at the capture instant, with ICP fitness (0..1) and inlier RMSE (m)."""

    T_cell_vehicle: F64
    fitness: float
    inlier_rmse_m: float
    init: str
    n_points: int


def depth_cloud_cell(camera: CameraModel, depth_m: npt.ArrayLike, stride: int = 2) -> F64:
    """Back-project a depth image (metres, 0 = invalid) of an RGB-D camera into the cell frame (N, 3).

    Uses the depth sensor's intrinsics and ``T_color_depth``. Raises :class:`CalibrationInputError`
    for a camera without depth or a depth image of the wrong size.
    """
    if camera.depth is None:
        raise CalibrationInputError(f"camera {camera.camera_id} has no depth sensor in the rig")
    d = camera.depth
    z = np.asarray(depth_m, dtype=np.float64)
    if z.shape != (d.height_px, d.width_px):
        raise CalibrationInputError(
            f"camera {camera.camera_id}: depth image is {z.shape[1]}x{z.shape[0]}, expected {d.width_px}x{d.height_px}"
        )
    v, u = np.mgrid[0 : d.height_px : stride, 0 : d.width_px : stride]
    zz = z[v, u].ravel()
    ok = (zz > d.min_depth_m) & (zz < d.max_depth_m)
    depth_cam = CameraModel(f"{camera.camera_id}-depth", d.K, d.dist, d.width_px, d.height_px)
    p_depth = depth_cam.unproject(np.stack([u.ravel()[ok], v.ravel()[ok]], axis=1), zz[ok])
    return transform_points(camera.T_cell_cam @ d.T_color_depth, p_depth)


def kabsch(src: F64, dst: F64) -> F64:
    """Rigid ``T`` with ``dst ≈ T @ src`` from >= 3 non-collinear pairs; raises :class:`CalibrationInputError`."""
    src, dst = np.asarray(src, dtype=np.float64), np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3 or len(src) < 3:
        raise CalibrationInputError("correspondences: need >= 3 pairs of 3D points")
    cs, cd = src.mean(axis=0), dst.mean(axis=0)
    H = (src - cs).T @ (dst - cd)
    if np.linalg.svd(src - cs, compute_uv=False)[1] < 1e-6:
        raise CalibrationInputError("correspondences: the points are collinear")
    U, _, Vt = np.linalg.svd(H)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(Vt.T @ U.T))])
    R = Vt.T @ D @ U.T
    return make_T(R, cd - R @ cs)


def _pcd(points: F64) -> o3d.geometry.PointCloud:
    pc = o3d.geometry.PointCloud()
    pc.points = o3d.utility.Vector3dVector(np.ascontiguousarray(points, dtype=np.float64))
    return pc


def _mesh_cloud(model: UnderbodyModel, n_points: int) -> o3d.geometry.PointCloud:
    mesh = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(model.vertices_vehicle_m), o3d.utility.Vector3iVector(model.triangles)
    )
    mesh.compute_triangle_normals()
    return mesh.sample_points_uniformly(number_of_points=n_points, use_triangle_normal=True)


def _global_init(cloud: o3d.geometry.PointCloud, target: o3d.geometry.PointCloud, voxel_m: float, seed: int) -> F64:
    """FPFH + RANSAC: ``T_vehicle_cell`` coarse estimate."""
    reg = o3d.pipelines.registration
    feats = []
    downs = []
    for pc in (cloud, target):
        d = pc.voxel_down_sample(voxel_m)
        d.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=2.5 * voxel_m, max_nn=30))
        search = o3d.geometry.KDTreeSearchParamHybrid(radius=5 * voxel_m, max_nn=100)
        feats.append(reg.compute_fpfh_feature(d, search))  # type: ignore[call-arg]
        downs.append(d)
    o3d.utility.random.seed(seed)
    res = reg.registration_ransac_based_on_feature_matching(
        downs[0], downs[1], feats[0], feats[1], False, 1.5 * voxel_m,
        reg.TransformationEstimationPointToPoint(False), 3,
        [reg.CorrespondenceCheckerBasedOnEdgeLength(0.9), reg.CorrespondenceCheckerBasedOnDistance(1.5 * voxel_m)],
        reg.RANSACConvergenceCriteria(200_000, 0.999),
    )
    return np.asarray(res.transformation, dtype=np.float64)


def register_underbody(
    model: UnderbodyModel, clouds_cell: Sequence[F64], T_cell_vehicle_init: F64 | None = None,
    voxel_m: float = 0.004, mesh_points: int = 300_000, seed: int = 0,
) -> RegistrationResult:
    """Estimate ``T_cell_vehicle`` by ICP of the cell-frame clouds against the mesh.

    ``T_cell_vehicle_init``: a starting pose (e.g. from :func:`kabsch` on picked points); None
    runs the coarse global registration. Raises :class:`SolveError` when too few points remain
    or the fit is poor (fitness < 0.3).
    """
    pts = np.concatenate([np.asarray(c, dtype=np.float64).reshape(-1, 3) for c in clouds_cell]) if clouds_cell \
        else np.zeros((0, 3))
    if len(pts) < 500:
        raise SolveError(f"registration: {len(pts)} depth points, need at least 500 (is the underbody in view?)")
    cloud = _pcd(pts).voxel_down_sample(voxel_m)
    target = _mesh_cloud(model, mesh_points)
    if T_cell_vehicle_init is None:
        T_vc = _global_init(cloud, target, 5 * voxel_m, seed)
        init = "global (FPFH + RANSAC)"
    else:
        T_vc = invert(np.asarray(T_cell_vehicle_init, dtype=np.float64))
        init = "correspondences"
    reg = o3d.pipelines.registration
    res = None
    for max_dist in (12 * voxel_m, 4 * voxel_m, 1.5 * voxel_m):
        res = reg.registration_icp(
            cloud, target, max_dist, T_vc, reg.TransformationEstimationPointToPlane(),
            reg.ICPConvergenceCriteria(relative_fitness=1e-9, relative_rmse=1e-9, max_iteration=60),
        )
        T_vc = np.asarray(res.transformation, dtype=np.float64)
    assert res is not None
    if res.fitness < 0.3:
        raise SolveError(f"registration failed: fitness {res.fitness:.2f} (< 0.3); give picked correspondences")
    log.info("registration: fitness %.3f, inlier RMSE %.2f mm (%s)", res.fitness, 1000 * res.inlier_rmse, init)
    return RegistrationResult(invert(T_vc), float(res.fitness), float(res.inlier_rmse), init, len(cloud.points))
