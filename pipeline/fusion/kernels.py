"""Compiled inner loops of fusion (numba, CPU): project vertices through a plumb_bob pinhole.

One pass per vertex does the rigid transform, the facing test, the pinhole projection with
radial (k1, k2, k3) and tangential (p1, p2) distortion, and the image-bounds test, so no
temporary (V, 3) arrays are made. Matches ``cv2.projectPoints`` for 5-coefficient models
(checked in tests/fusion).
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]


@numba.njit(cache=True, nogil=True)
def project_plumb_bob(
    verts: F64, normals: F64, index: I32, R: F64, t: F64, K: F64, dist: F64, width: int, height: int,
    margin: float, cos_min: float, out_index: I32, out_uv: F64, out_z: F64, out_cos: F64, out_dist: F64,
) -> int:
    """Write the kept vertices to the ``out_*`` arrays (length >= len(index)); return how many."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    k1, k2, p1, p2, k3 = dist[0], dist[1], dist[2], dist[3], dist[4]
    umin, umax = -0.5 + margin, width - 0.5 - margin
    vmin, vmax = -0.5 + margin, height - 0.5 - margin
    n = 0
    for j in range(index.shape[0]):
        i = index[j]
        px, py, pz = verts[i, 0], verts[i, 1], verts[i, 2]
        X = R[0, 0] * px + R[0, 1] * py + R[0, 2] * pz + t[0]
        Y = R[1, 0] * px + R[1, 1] * py + R[1, 2] * pz + t[1]
        Z = R[2, 0] * px + R[2, 1] * py + R[2, 2] * pz + t[2]
        if Z <= 1e-3:
            continue
        nx, ny, nz = normals[i, 0], normals[i, 1], normals[i, 2]
        NX = R[0, 0] * nx + R[0, 1] * ny + R[0, 2] * nz
        NY = R[1, 0] * nx + R[1, 1] * ny + R[1, 2] * nz
        NZ = R[2, 0] * nx + R[2, 1] * ny + R[2, 2] * nz
        d = np.sqrt(X * X + Y * Y + Z * Z)
        c = -(NX * X + NY * Y + NZ * Z) / d
        if c < cos_min:
            continue
        x = X / Z
        y = Y / Z
        r2 = x * x + y * y
        radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
        xd = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
        yd = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
        u = fx * xd + K[0, 1] * yd + cx
        v = fy * yd + cy
        if u < umin or u > umax or v < vmin or v > vmax:
            continue
        out_index[n] = i
        out_uv[n, 0] = u
        out_uv[n, 1] = v
        out_z[n] = Z
        out_cos[n] = c
        out_dist[n] = d
        n += 1
    return n


@numba.njit(cache=True, nogil=True)
def accumulate_view(
    index: I32, uv: F64, cos_view: F64, dist_m: F64, heatmap: npt.NDArray[np.float32], ref_distance_m: float,
    view_bit: int, acc_w: F64, acc_ws: F64, acc_sum: F64, acc_max: npt.NDArray[np.float32], acc_cnt: I32,
    views_now: npt.NDArray[np.uint16], obs_sum: F64, obs_sq: F64,
) -> None:
    """Bilinearly sample one view's heatmap at ``uv`` and add it to the per-vertex accumulators.

    Weight of a sample: ``cos_view * (ref_distance_m / dist_m) ** 2``. ``index`` must be unique.
    """
    h, w = heatmap.shape
    for j in range(index.shape[0]):
        i = index[j]
        u = min(max(uv[j, 0], 0.0), w - 1.0)
        v = min(max(uv[j, 1], 0.0), h - 1.0)
        u0 = min(int(u), w - 2) if w > 1 else 0
        v0 = min(int(v), h - 2) if h > 1 else 0
        u1 = min(u0 + 1, w - 1)
        v1 = min(v0 + 1, h - 1)
        fu = u - u0
        fv = v - v0
        top = heatmap[v0, u0] * (1.0 - fu) + heatmap[v0, u1] * fu
        bottom = heatmap[v1, u0] * (1.0 - fu) + heatmap[v1, u1] * fu
        s = top * (1.0 - fv) + bottom * fv
        r = ref_distance_m / dist_m[j]
        wt = cos_view[j] * r * r
        acc_w[i] += wt
        acc_ws[i] += wt * s
        acc_sum[i] += s
        if s > acc_max[i]:
            acc_max[i] = s
        acc_cnt[i] += 1
        views_now[i] |= view_bit
        obs_sum[i] += s
        obs_sq[i] += s * s
