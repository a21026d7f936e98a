"""Exact synthetic views of a calibration board through a :class:`CameraModel`.

Each output pixel averages ``supersample``² sub-pixel rays. Every ray is undistorted through
the camera model (so the image carries the model's lens distortion exactly), intersected with
the board plane and shaded from the printed board texture (bilinear). Sensor noise and 8-bit
quantisation follow. Used for tests with known ground truth, benchmarks and ``xrcalib synth``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
from scipy.spatial.transform import Rotation

from calibration.boards import BoardSpec
from calibration.camera import CameraModel
from calibration.se3 import invert, make_T

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class BoardLook:
    """Print and scene photometry: grey levels of black and white squares and of the background."""

    black: float = 25.0
    white: float = 225.0
    background: float = 70.0
    noise_sigma: float = 1.5


class BoardRenderer:
    """Renders one board through one camera; caches the camera's sub-pixel rays."""

    def __init__(self, camera: CameraModel, board: BoardSpec, supersample: int = 2, px_per_square: int = 48) -> None:
        self.camera = camera
        self.board = board
        self.supersample = int(supersample)
        s = self.supersample
        W, H = camera.width_px, camera.height_px
        off = (np.arange(s) + 0.5) / s - 0.5
        u = (np.arange(W)[:, None] + off[None, :]).reshape(-1)
        v = (np.arange(H)[:, None] + off[None, :]).reshape(-1)
        uu, vv = np.meshgrid(u, v)
        # float32 is ample here (1e-7 relative) and halves the memory traffic of each render
        self._rays = camera.normalized_rays(np.stack([uu.ravel(), vv.ravel()], axis=1)).astype(np.float32)
        tex, ppu, origin = board.texture(px_per_square)
        self._tex = tex.astype(np.float32) / 255.0
        self._centre_rays: F64 | None = None  # pixel-centre rays, made on the first depth()
        self._ppu = ppu
        self._origin = origin

    def _intersect(self, T_cam_board: F64) -> tuple[F32, npt.NDArray[np.bool_], F32]:
        R, t = T_cam_board[:3, :3].astype(np.float32), T_cam_board[:3, 3].astype(np.float32)
        n = R[:, 2]
        denom = self._rays @ n
        with np.errstate(divide="ignore", invalid="ignore"):
            lam = np.float32(n @ t) / denom
        valid = np.isfinite(lam) & (lam > 0)
        lam = np.where(valid, lam, np.float32(0.0))
        # board-frame coordinates of the hit: R^T (lam * ray - t), without forming the 3D points
        q = lam[:, None] * (self._rays @ R) - (t @ R)[None, :]
        return q, valid, lam

    def render(self, T_cam_board: F64, rng: np.random.Generator | None = None, look: BoardLook = BoardLook()) -> U8:
        """The 8-bit grey image of the board at ``T_cam_board`` (board frame in the camera frame)."""
        cam = self.camera
        s = self.supersample
        q, valid, _ = self._intersect(np.asarray(T_cam_board, dtype=np.float64))
        ppu = np.float32(self._ppu)
        mx = np.where(valid, (q[:, 0] - np.float32(self._origin[0])) * ppu, np.float32(-10.0))
        my = np.where(valid, (q[:, 1] - np.float32(self._origin[1])) * ppu, np.float32(-10.0))
        hs, ws = cam.height_px * s, cam.width_px * s
        refl = cv2.remap(self._tex, mx.reshape(hs, ws), my.reshape(hs, ws), cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=-1.0)
        on_board = refl >= 0
        img = np.where(on_board, np.float32(look.black) + np.float32(look.white - look.black) * refl,
                       np.float32(look.background))
        img = img.reshape(cam.height_px, s, cam.width_px, s).mean(axis=(1, 3))
        if rng is not None and look.noise_sigma > 0:
            img = img + rng.normal(0.0, look.noise_sigma, img.shape)
        out: U8 = np.clip(np.round(img), 0, 255).astype(np.uint8)
        return out

    def depth(self, T_cam_board: F64) -> F32:
        """Exact z-depth (m or board units) of the board plane at each pixel centre; 0 off the board."""
        cam = self.camera
        if self._centre_rays is None:
            v, u = np.mgrid[0 : cam.height_px, 0 : cam.width_px]
            self._centre_rays = cam.normalized_rays(np.stack([u.ravel(), v.ravel()], axis=1))  # z = 1
        T = np.asarray(T_cam_board, dtype=np.float64)
        R, t = T[:3, :3], T[:3, 3]
        n = R[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            lam = (n @ t) / (self._centre_rays @ n)
        q = lam[:, None] * (self._centre_rays @ R) - (t @ R)[None, :]
        o = self.board.outline()
        inside = (np.isfinite(lam) & (lam > 0) & (q[:, 0] >= o[0, 0]) & (q[:, 0] <= o[1, 0])
                  & (q[:, 1] >= o[0, 1]) & (q[:, 1] <= o[2, 1]))
        z = np.where(inside, lam, 0.0)  # rays have z = 1, so lam is the z-depth
        return z.reshape(cam.height_px, cam.width_px).astype(np.float32)

    def visible(self, T_cam_board: F64, margin_px: float = 6.0, max_incidence_deg: float = 55.0) -> bool:
        """True when the print faces the camera at most ``max_incidence_deg`` off its normal and every
        corner projects inside the image (with margin)."""
        return board_visible(self.camera, self.board, T_cam_board, margin_px, max_incidence_deg)


def board_visible(
    camera: CameraModel, board: BoardSpec, T_cam_board: F64, margin_px: float = 6.0, max_incidence_deg: float = 55.0
) -> bool:
    """See :meth:`BoardRenderer.visible`."""
    obj = board.object_points()
    centre = obj.mean(axis=0) @ T_cam_board[:3, :3].T + T_cam_board[:3, 3]
    cos_inc = float(T_cam_board[:3, 2] @ centre) / max(float(np.linalg.norm(centre)), 1e-12)
    if cos_inc < np.cos(np.radians(max_incidence_deg)):  # grazing, or seen from the back
        return False
    p = obj @ T_cam_board[:3, :3].T + T_cam_board[:3, 3]
    if np.any(p[:, 2] <= 0.05 * board.square_size):
        return False
    uv, _ = camera.project_cam(p)
    return bool(np.all(camera.in_image(uv, margin_px)))


def sample_board_poses(
    cameras: Sequence[CameraModel], board: BoardSpec, n_poses: int, center_cell_m: F64, spread_m: F64,
    max_tilt_deg: float, rng: np.random.Generator, min_cameras: int = 1, max_tries: int = 200_000,
) -> list[F64]:
    """Random board poses ``T_cell_board`` around ``center_cell_m`` (± ``spread_m`` per axis).

    The board's printed side faces down (-z of the cell) and is tilted by up to ``max_tilt_deg``;
    a pose is kept when at least ``min_cameras`` cameras see the whole board. Raises
    ``ValueError`` when too few poses are found.
    """
    out: list[F64] = []
    obj = board.object_points()
    mid = obj.mean(axis=0)
    for _ in range(max_tries):
        if len(out) == n_poses:
            break
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        tilt = Rotation.from_rotvec(axis * np.radians(rng.uniform(0, max_tilt_deg))).as_matrix()
        yaw = Rotation.from_euler("z", rng.uniform(-np.pi, np.pi)).as_matrix()
        R = tilt @ yaw  # board z (away from the printed side) points up: the print faces the cameras below
        c = np.asarray(center_cell_m) + rng.uniform(-1, 1, 3) * np.asarray(spread_m)
        T = make_T(R, c - R @ mid)
        seen = sum(board_visible(cam, board, invert(cam.T_cell_cam) @ T) for cam in cameras)
        if seen >= min_cameras:
            out.append(T)
    if len(out) < n_poses:
        raise ValueError(f"found only {len(out)} of {n_poses} board poses seen by {min_cameras} cameras")
    return out


def sample_camera_poses(
    camera: CameraModel, board: BoardSpec, n_poses: int, distance: tuple[float, float], max_tilt_deg: float,
    rng: np.random.Generator, max_tries: int = 100_000,
) -> list[F64]:
    """Board poses ``T_cam_board`` for an intrinsic session: the board anywhere in the image at a
    distance in ``distance`` (board units), tilted up to ``max_tilt_deg`` towards the camera,
    wholly visible. Raises ``ValueError`` when too few are found."""
    out: list[F64] = []
    mid = board.object_points().mean(axis=0)
    for _ in range(max_tries):
        if len(out) == n_poses:
            break
        size = np.array([camera.width_px, camera.height_px], dtype=np.float64)
        uv = rng.uniform(0.1 * size, 0.9 * size)
        ray = camera.normalized_rays(uv[None])[0]
        c = ray / np.linalg.norm(ray) * rng.uniform(*distance)
        axis = rng.normal(size=3)
        axis[2] = 0.0
        axis /= np.linalg.norm(axis)
        tilt = Rotation.from_rotvec(axis * np.radians(rng.uniform(10.0, max_tilt_deg))).as_matrix()
        R = tilt @ Rotation.from_euler("z", rng.uniform(-0.4, 0.4)).as_matrix()
        T = make_T(R, c - R @ mid)
        if board_visible(camera, board, T, 4.0, 65.0):
            out.append(T)
    if len(out) < n_poses:
        raise ValueError(f"found only {len(out)} of {n_poses} board poses for camera {camera.camera_id}")
    return out
