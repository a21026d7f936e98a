"""The per-pixel shading kernel of the twin renderer, compiled with numba.

One fused, parallel pass per view replaces some forty whole-image numpy
operations (gathers, normalisation, lighting, noise, gamma): the renderer is
memory-bound, and touching each pixel once is what makes a 4-camera rig render
at interactive rates on two cores. The maths is documented in
:mod:`pipeline.twin.render`.
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

# OpenMP is safe when kernels are launched from several threads (the server's workers); numba would
# otherwise probe an old system TBB and warn.
setattr(numba.config, "THREADING_LAYER", "omp")  # noqa: B010 - not in numba's type stubs


@numba.njit(parallel=True, cache=True)
def rays_hitting_box(origin: F32, dirs: F32, lo: F32, hi: F32, out: npt.NDArray[np.bool_]) -> None:
    """Slab test: which rays from ``origin`` along ``dirs`` (N, 3) enter the box [lo, hi]."""
    for i in numba.prange(dirs.shape[0]):
        t0 = 0.0
        t1 = np.inf
        for c in range(3):
            d = dirs[i, c]
            if d != 0.0:
                a = (lo[c] - origin[c]) / d
                b = (hi[c] - origin[c]) / d
                t0 = max(t0, min(a, b))
                t1 = min(t1, max(a, b))
            elif origin[c] < lo[c] or origin[c] > hi[c]:
                t1 = -1.0
        out[i] = t1 >= t0


@numba.njit(parallel=True, cache=True)
def gather_rays(origin: F32, dirs: F32, index: npt.NDArray[np.int64], out: F32) -> None:
    """``out[k] = (origin, dirs[index[k]])``: the (M, 6) ray array open3d casts."""
    for k in numba.prange(index.shape[0]):
        i = index[k]
        for c in range(3):
            out[k, c] = origin[c]
            out[k, 3 + c] = dirs[i, c]


# fastmath without nnan/ninf: misses are encoded as t = inf and must stay detectable
@numba.njit(parallel=True, cache=True, fastmath={"nsz", "arcp", "contract", "afn", "reassoc"})
def shade_view(
    ray_index: npt.NDArray[np.int32],  # (N,) index into the cast rays, -1 = culled (cannot hit)
    t_hit: F32,  # (M,) ray length of the cast rays, inf = miss
    prim: npt.NDArray[np.uint32],  # (M,) triangle index
    uv: F32,  # (M, 2) barycentrics of vertices 1 and 2
    dirs: F32,  # (N, 3) unit ray directions (vehicle frame)
    triangles: npt.NDArray[np.int32],  # (F, 3)
    vertex_attr: F32,  # (V, 6) unit normal, linear albedo RGB
    triangle_seam: npt.NDArray[np.int16],  # (F,)
    vignette: F32,  # (N,)
    z_per_t: F32,  # (N,)
    lights: F32,  # (L, 7): direction (3), half vector (3), strength
    background: F32,  # (3,)
    params: F32,  # light_gain, specular, shininess, exposure, noise_sigma^2, ambient, ring_ref_m
    noise: F32,  # (>= 3N,) unit Gaussian noise
    gamma_lut: npt.NDArray[np.uint8],  # (K,) linear [0, 1] -> 8-bit code
    rgb_out: npt.NDArray[np.uint8],  # (N, 3)
    depth_out: F32,  # (N,) exact z-depth, 0 = no surface
    ndotv_out: F32,  # (N,) |n . v|, 0 = no surface
    seam_out: npt.NDArray[np.int16],  # (N,) seam index, -1 = none
    origin: F32,  # (3,) ray origin (vehicle frame)
    p_out: F32,  # (N, 3) hit point in the vehicle frame, NaN = no surface
) -> None:
    gain, spec, shin, exposure, read_var, ambient, ring_ref = (
        params[0], params[1], params[2], params[3], params[4], params[5], params[6],
    )
    n_lut = gamma_lut.shape[0] - 1
    for i in numba.prange(ray_index.shape[0]):
        j = ray_index[i]
        t = t_hit[j] if j >= 0 else np.inf
        r = background[0]
        g = background[1]
        b = background[2]
        if np.isfinite(t):
            f = prim[j]
            w1 = uv[j, 0]
            w2 = uv[j, 1]
            w0 = 1.0 - w1 - w2
            a0 = triangles[f, 0]
            a1 = triangles[f, 1]
            a2 = triangles[f, 2]
            nx = w0 * vertex_attr[a0, 0] + w1 * vertex_attr[a1, 0] + w2 * vertex_attr[a2, 0]
            ny = w0 * vertex_attr[a0, 1] + w1 * vertex_attr[a1, 1] + w2 * vertex_attr[a2, 1]
            nz = w0 * vertex_attr[a0, 2] + w1 * vertex_attr[a1, 2] + w2 * vertex_attr[a2, 2]
            inv = 1.0 / np.sqrt(max(nx * nx + ny * ny + nz * nz, 1e-12))
            nx *= inv
            ny *= inv
            nz *= inv
            # orient the normal towards the camera: interpolated normals of thin geometry may face away
            ndv = -(nx * dirs[i, 0] + ny * dirs[i, 1] + nz * dirs[i, 2])
            if ndv < 0.0:
                nx = -nx
                ny = -ny
                nz = -nz
                ndv = -ndv
            ring = gain * (ring_ref / max(t, 0.05)) ** 2
            shade = ambient + ring * ndv
            high = spec * ring * ndv / (shin - shin * ndv + ndv + 1e-12)  # Schlick's pow(ndv, shin)
            for k in range(lights.shape[0]):
                nl = max(nx * lights[k, 0] + ny * lights[k, 1] + nz * lights[k, 2], 0.0)
                nh = max(nx * lights[k, 3] + ny * lights[k, 4] + nz * lights[k, 5], 0.0)
                shade += gain * lights[k, 6] * nl
                high += spec * lights[k, 6] * nh / (shin - shin * nh + nh + 1e-12)
            r = (w0 * vertex_attr[a0, 3] + w1 * vertex_attr[a1, 3] + w2 * vertex_attr[a2, 3]) * shade + high
            g = (w0 * vertex_attr[a0, 4] + w1 * vertex_attr[a1, 4] + w2 * vertex_attr[a2, 4]) * shade + high
            b = (w0 * vertex_attr[a0, 5] + w1 * vertex_attr[a1, 5] + w2 * vertex_attr[a2, 5]) * shade + high
            depth_out[i] = t * z_per_t[i]
            ndotv_out[i] = ndv
            for c in range(3):
                p_out[i, c] = origin[c] + t * dirs[i, c]
            s = triangle_seam[f]
            seam_out[i] = s if s >= 0 else -1
        else:
            depth_out[i] = 0.0
            ndotv_out[i] = 0.0
            for c in range(3):
                p_out[i, c] = np.nan
            seam_out[i] = -1
        scale = exposure * vignette[i]
        for c in range(3):
            v = (r if c == 0 else (g if c == 1 else b)) * scale
            # shot noise (variance proportional to signal) plus read noise
            sigma = np.sqrt(0.0004 * min(max(v, 0.0), 1.0) + read_var)
            v += sigma * noise[3 * i + c]
            v = min(max(v, 0.0), 1.0)
            rgb_out[i, c] = gamma_lut[int(v * n_lut)]


#: |N(0, 1)| above this has probability 1 %: the random dropout rate of the depth sensor
DROPOUT_Z = 2.5758


@numba.njit(parallel=True, cache=True)
def sensor_depth(
    depth_true: F32,  # (N,) exact z-depth, 0 = no surface
    ndotv: F32,  # (N,) |n . v| of the surface seen
    noise: F32,  # (>= 2N,) unit Gaussian noise
    scale_m: float,  # depth quantum
    min_m: float,
    max_m: float,
    out: F32,  # (N,) sensor depth, 0 = invalid
) -> None:
    """Structured-light style depth: sigma = 0.6 mm + 1.2 mm * z^2, dropouts at grazing angles, out of
    range and at random (1 %), quantised to ``scale_m``."""
    n = depth_true.shape[0]
    for i in numba.prange(n):
        z = depth_true[i]
        if z <= 0.0 or ndotv[i] < 0.2 or z < min_m or z > max_m or abs(noise[n + i]) > DROPOUT_Z:
            out[i] = 0.0
        else:
            noisy = z + (0.0006 + 0.0012 * z * z) * noise[i]
            out[i] = np.floor(noisy / scale_m + 0.5) * scale_m
