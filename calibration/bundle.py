"""Joint refinement (bundle adjustment) of camera poses and board poses with scipy ``least_squares``.

Unknowns: the pose ``T_ref_cam`` of every camera but the reference one (which fixes the gauge)
and the pose ``T_ref_board`` of the board in every view. Intrinsics are held at their per-camera
values: each observed corner is undistorted once through its camera model, and the residual is
the difference of normalised image coordinates scaled by (fx, fy), which is the pixel error to
first order for any distortion model (pinhole or fisheye).

Each residual depends on one camera and one board pose, so the Jacobian is block-sparse; its
pattern is given to the solver (``jac_sparsity``), which then needs only ~13 function calls per
Jacobian however many views there are. Parameter covariance is ``σ² (JᵀJ)⁻¹`` at the solution,
with σ² the residual variance per degree of freedom.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import least_squares
from scipy.sparse import coo_matrix
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from calibration.boards import BoardDetection, BoardSpec
from calibration.camera import CameraModel
from calibration.errors import CalibrationInputError, SolveError
from calibration.intrinsics import board_residuals_px
from calibration.pose import board_pose
from calibration.se3 import invert, make_T, to_rotvec

log = logging.getLogger(__name__)
F64 = npt.NDArray[np.float64]
Views = Mapping[str, Mapping[str, BoardDetection]]  # camera id -> view id -> detection


@dataclass(frozen=True, slots=True, eq=False)
class BundleResult:
    """Refined poses in the reference camera's frame, with errors and uncertainties.

    ``sigma_rot_deg`` / ``sigma_t``: one-sigma uncertainty (norm over axes) of each camera's
    rotation (degrees) and position (board units); zero for the reference camera.
    ``residuals_px``: camera -> view -> (N, 2) projected minus detected, true pixels.
    """

    reference_camera: str
    T_ref_cam: dict[str, F64]
    T_ref_board: dict[str, F64]
    rms_px: float
    per_camera_rms_px: dict[str, float]
    per_view_rms_px: dict[str, dict[str, float]]
    residuals_px: dict[str, dict[str, F64]]
    sigma_rot_deg: dict[str, float]
    sigma_t: dict[str, float]
    n_observations: int
    n_function_evals: int


def _chordal_mean(Ts: Sequence[F64]) -> F64:
    M = sum(T[:3, :3] for T in Ts)
    U, _, Vt = np.linalg.svd(np.asarray(M))
    R = U @ np.diag([1.0, 1.0, np.linalg.det(U @ Vt)]) @ Vt
    return make_T(R, np.mean([T[:3, 3] for T in Ts], axis=0))


def _initial_poses(
    cams: dict[str, CameraModel], T_cam_board: dict[str, dict[str, F64]], ref: str
) -> tuple[dict[str, F64], dict[str, F64]]:
    """Camera poses chained from the reference over shared views (BFS), then board poses."""
    T_ref_cam: dict[str, F64] = {ref: np.eye(4)}
    queue = deque([ref])
    while queue:
        a = queue.popleft()
        for b in cams:
            if b in T_ref_cam:
                continue
            shared = [v for v in T_cam_board[a] if v in T_cam_board[b]]
            if not shared:
                continue
            cands = [T_ref_cam[a] @ T_cam_board[a][v] @ invert(T_cam_board[b][v]) for v in shared]
            T_ref_cam[b] = _chordal_mean(cands)
            queue.append(b)
    missing = [c for c in cams if c not in T_ref_cam]
    if missing:
        raise SolveError(f"cameras {missing} share no board views with camera {ref} (directly or through others)")
    T_ref_board: dict[str, F64] = {}
    for c in cams:
        for v, T in T_cam_board[c].items():
            T_ref_board.setdefault(v, T_ref_cam[c] @ T)
    return T_ref_cam, T_ref_board


def bundle_adjust(
    cameras: Sequence[CameraModel], views: Views, board: BoardSpec, reference_camera: str | None = None,
    use_sparsity: bool = True, progress: bool = True,
) -> BundleResult:
    """Refine all camera and board poses jointly; cameras keep their intrinsics.

    ``views``: camera id -> view id -> detection; a view id names one instant (board pose) seen
    by any subset of cameras. Raises :class:`CalibrationInputError` for camera ids without a
    model, :class:`SolveError` for cameras not linked to the reference by shared views.
    """
    cams = {c.camera_id: c for c in cameras}
    unknown = [c for c in views if c not in cams]
    if unknown:
        raise CalibrationInputError(f"unknown camera ids {unknown}; known: {sorted(cams)}")
    ref = reference_camera or cameras[0].camera_id
    if ref not in cams:
        raise CalibrationInputError(f"unknown reference camera {ref!r}; known: {sorted(cams)}")
    T_cam_board = {c: {v: board_pose(cams[c], board, d) for v, d in views.get(c, {}).items()} for c in cams}
    T_ref_cam0, T_ref_board0 = _initial_poses(cams, T_cam_board, ref)
    free_cams = [c for c in cams if c != ref]
    view_ids = sorted(T_ref_board0)
    cam_col = {c: 6 * i for i, c in enumerate(free_cams)}
    view_col = {v: 6 * len(free_cams) + 6 * i for i, v in enumerate(view_ids)}
    cam_index = {c: i for i, c in enumerate(cams)}
    view_index = {v: i for i, v in enumerate(view_ids)}

    obj_all = board.object_points()
    ci, vi, X, xy, f = [], [], [], [], []
    for c, per_view in views.items():
        cam = cams[c]
        for v, d in per_view.items():
            n = len(d)
            ci.append(np.full(n, cam_index[c]))
            vi.append(np.full(n, view_index[v]))
            X.append(obj_all[d.corner_ids])
            xy.append(cam.normalized_rays(d.uv_px)[:, :2])
            f.append(np.tile([cam.K[0, 0], cam.K[1, 1]], (n, 1)))
    if not ci:
        raise SolveError("no board observations to refine")
    ci_a, vi_a = np.concatenate(ci), np.concatenate(vi)
    X_a, xy_a, f_a = np.concatenate(X), np.concatenate(xy), np.concatenate(f)
    m = len(ci_a)
    cam_ids = list(cams)

    def unpack(x: F64) -> tuple[F64, F64, F64, F64]:
        Rc = np.tile(np.eye(3), (len(cam_ids), 1, 1))
        tc = np.zeros((len(cam_ids), 3))
        for c in free_cams:
            k = cam_col[c]
            Rc[cam_index[c]] = Rotation.from_rotvec(x[k : k + 3]).as_matrix()
            tc[cam_index[c]] = x[k + 3 : k + 6]
        b0 = 6 * len(free_cams)
        bp = x[b0:].reshape(-1, 6)
        Rb = Rotation.from_rotvec(bp[:, :3]).as_matrix()
        return Rc, tc, Rb, bp[:, 3:]

    bar = tqdm(desc="bundle adjustment", unit="eval", leave=False, disable=not progress)
    n_evals = 0

    def residuals(x: F64) -> F64:
        nonlocal n_evals
        n_evals += 1
        bar.update(1)
        Rc, tc, Rb, tb = unpack(x)
        q = np.einsum("mij,mj->mi", Rb[vi_a], X_a) + tb[vi_a]
        p = np.einsum("mji,mj->mi", Rc[ci_a], q - tc[ci_a])
        z = np.maximum(p[:, 2:3], 1e-6)
        return np.asarray(((p[:, :2] / z - xy_a) * f_a).ravel(), dtype=np.float64)

    x0 = np.zeros(6 * (len(free_cams) + len(view_ids)))
    for c in free_cams:
        rv, t = to_rotvec(T_ref_cam0[c])
        x0[cam_col[c] : cam_col[c] + 6] = np.concatenate([rv, t])
    for v in view_ids:
        rv, t = to_rotvec(T_ref_board0[v])
        x0[view_col[v] : view_col[v] + 6] = np.concatenate([rv, t])

    rows, cols = [], []
    obs_rows = np.arange(2 * m).reshape(m, 2)
    col_of_cam = np.array([cam_col.get(c, -1) for c in cam_ids])
    col_of_view = np.array([view_col[v] for v in view_ids])
    for k in range(6):
        for r in range(2):
            rows.append(obs_rows[:, r])
            cols.append(col_of_view[vi_a] + k)
            has = col_of_cam[ci_a] >= 0
            rows.append(obs_rows[has, r])
            cols.append(col_of_cam[ci_a[has]] + k)
    rr, cc = np.concatenate(rows), np.concatenate(cols)
    sparsity = coo_matrix((np.ones(len(rr)), (rr, cc)), shape=(2 * m, len(x0))).tocsr()
    try:
        sol = least_squares(
            residuals, x0, jac_sparsity=sparsity if use_sparsity else None, method="trf", x_scale="jac",
            xtol=1e-10, ftol=1e-10, max_nfev=200,
        )
    finally:
        bar.close()
    if not np.all(np.isfinite(sol.x)):
        raise SolveError("bundle adjustment diverged")

    Rc, tc, Rb, tb = unpack(sol.x)
    T_ref_cam = {c: make_T(Rc[cam_index[c]], tc[cam_index[c]]) for c in cam_ids}
    T_ref_board = {v: make_T(Rb[view_index[v]], tb[view_index[v]]) for v in view_ids}
    sig_r, sig_t = _uncertainty(sol.jac, sol.fun, free_cams, cam_col)
    resid: dict[str, dict[str, F64]] = {}
    for c, per_view in views.items():
        resid[c] = {}
        for v, d in per_view.items():
            T_cam_board_v = invert(T_ref_cam[c]) @ T_ref_board[v]
            resid[c][v] = board_residuals_px(cams[c], T_cam_board_v, board, d)
    per_view_rms = {c: {v: float(np.sqrt(np.mean(np.sum(r**2, axis=1)))) for v, r in rv_.items()}
                    for c, rv_ in resid.items()}
    per_cam = {c: float(np.sqrt(np.mean(np.sum(np.concatenate(list(rv_.values())) ** 2, axis=1))))
               for c, rv_ in resid.items() if rv_}
    allr = np.concatenate([r for rv_ in resid.values() for r in rv_.values()])
    rms = float(np.sqrt(np.mean(np.sum(allr**2, axis=1))))
    log.info("bundle adjustment: %d cameras, %d board poses, %d corners, RMS %.3f px, %d evaluations",
             len(cams), len(view_ids), m, rms, n_evals)
    sig_r[ref], sig_t[ref] = 0.0, 0.0
    return BundleResult(ref, T_ref_cam, T_ref_board, rms, per_cam, per_view_rms, resid, sig_r, sig_t, m, n_evals)


def _uncertainty(
    jac: object, fun: F64, free_cams: list[str], cam_col: dict[str, int]
) -> tuple[dict[str, float], dict[str, float]]:
    """One-sigma rotation (deg) and translation uncertainty per free camera from σ²(JᵀJ)⁻¹."""
    J = jac.toarray() if hasattr(jac, "toarray") else np.asarray(jac)
    m, n = J.shape
    dof = max(m - n, 1)
    s2 = float(fun @ fun) / dof
    JtJ = J.T @ J
    try:
        cov = np.linalg.inv(JtJ) * s2
    except np.linalg.LinAlgError:
        cov = np.linalg.pinv(JtJ) * s2
    sig_r, sig_t = {}, {}
    for c in free_cams:
        k = cam_col[c]
        d = np.clip(np.diag(cov)[k : k + 6], 0.0, None)
        sig_r[c] = float(np.degrees(np.sqrt(d[:3].sum())))
        sig_t[c] = float(np.sqrt(d[3:].sum()))
    return sig_r, sig_t


def express_in_cell(
    cameras: Sequence[CameraModel], result: BundleResult, references: Mapping[str, F64]
) -> tuple[CameraModel, ...]:
    """The cameras with ``T_cell_cam`` set, from the board's known (surveyed) cell pose in one or more views.

    ``references``: view id -> ``T_cell_board``. With several, the cell alignment is their
    chordal mean. Raises :class:`CalibrationInputError` when a view is not a refined board pose.
    """
    if not references:
        raise CalibrationInputError("need at least one reference view with a known board pose in the cell")
    cands = []
    for view_id, T_cell_board in references.items():
        if view_id not in result.T_ref_board:
            raise CalibrationInputError(f"reference view {view_id!r} is not among the refined board poses")
        cands.append(np.asarray(T_cell_board, dtype=np.float64) @ invert(result.T_ref_board[view_id]))
    T_cell_ref = _chordal_mean(cands)
    return tuple(c.with_pose(_orthonormal(T_cell_ref @ result.T_ref_cam[c.camera_id])) for c in cameras)


def _orthonormal(T: F64) -> F64:
    U, _, Vt = np.linalg.svd(T[:3, :3])
    return make_T(U @ Vt, T[:3, 3])

