"""Triangle mesh files: PLY through open3d, binary glTF (GLB) written and read here.

open3d 0.20 writes GLB files that its own reader (assimp) rejects, and three.js and Unity
read GLB natively, so GLB gets a small, strict implementation of the glTF 2.0 binary
container: one mesh, float32 POSITION, uint32 indices, metres.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt

from calibration.errors import UnderbodyModelError

F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
_GLB_MAGIC = 0x46546C67  # "glTF"
_CHUNK_JSON = 0x4E4F534A
_CHUNK_BIN = 0x004E4942
_FLOAT, _UINT = 5126, 5125


def _pad4(data: bytes, fill: bytes) -> bytes:
    return data + fill * (-len(data) % 4)


def glb_bytes(vertices_m: F64, triangles: I32) -> bytes:
    """Encode a mesh as a GLB document."""
    pos = np.ascontiguousarray(vertices_m, dtype="<f4")
    idx = np.ascontiguousarray(triangles, dtype="<u4")
    pos_b, idx_b = pos.tobytes(), idx.tobytes()
    gltf = {
        "asset": {"version": "2.0", "generator": "xr-sealant-inspection"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1, "mode": 4}]}],
        "buffers": [{"byteLength": len(pos_b) + len(idx_b)}],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": len(pos_b), "target": 34962},
            {"buffer": 0, "byteOffset": len(pos_b), "byteLength": len(idx_b), "target": 34963},
        ],
        "accessors": [
            {"bufferView": 0, "componentType": _FLOAT, "count": len(pos), "type": "VEC3",
             "min": pos.min(axis=0).tolist(), "max": pos.max(axis=0).tolist()},
            {"bufferView": 1, "componentType": _UINT, "count": idx.size, "type": "SCALAR"},
        ],
    }
    js = _pad4(json.dumps(gltf, separators=(",", ":")).encode(), b" ")
    binary = _pad4(pos_b + idx_b, b"\0")
    total = 12 + 8 + len(js) + 8 + len(binary)
    return b"".join([
        struct.pack("<III", _GLB_MAGIC, 2, total),
        struct.pack("<II", len(js), _CHUNK_JSON), js,
        struct.pack("<II", len(binary), _CHUNK_BIN), binary,
    ])


def read_glb(path: Path) -> tuple[F64, I32]:
    """Read the first triangle primitive of a GLB file; raises :class:`UnderbodyModelError`."""
    data = path.read_bytes()
    try:
        magic, version, total = struct.unpack_from("<III", data, 0)
        if magic != _GLB_MAGIC or version != 2 or total != len(data):
            raise ValueError("not a glTF 2.0 binary file")
        js_len, js_type = struct.unpack_from("<II", data, 12)
        if js_type != _CHUNK_JSON:
            raise ValueError("first chunk is not JSON")
        gltf = json.loads(data[20 : 20 + js_len])
        bin_off = 20 + js_len
        bin_len, bin_type = struct.unpack_from("<II", data, bin_off)
        if bin_type != _CHUNK_BIN:
            raise ValueError("second chunk is not BIN")
        blob = data[bin_off + 8 : bin_off + 8 + bin_len]
        prim = gltf["meshes"][0]["primitives"][0]

        def accessor(i: int, dtype: str, width: int) -> npt.NDArray[np.generic]:
            acc = gltf["accessors"][i]
            view = gltf["bufferViews"][acc["bufferView"]]
            start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
            n = acc["count"] * width
            arr = np.frombuffer(blob, dtype=dtype, count=n, offset=start)
            return arr.reshape(-1, width) if width > 1 else arr

        if gltf["accessors"][prim["attributes"]["POSITION"]]["componentType"] != _FLOAT:
            raise ValueError("POSITION must be float32")
        pos = accessor(prim["attributes"]["POSITION"], "<f4", 3).astype(np.float64)
        ctype = gltf["accessors"][prim["indices"]]["componentType"]
        itype = {_UINT: "<u4", 5123: "<u2", 5121: "u1"}[ctype]
        tri = accessor(prim["indices"], itype, 1).astype(np.int64).reshape(-1, 3)
    except (ValueError, KeyError, IndexError, TypeError, struct.error, json.JSONDecodeError) as e:
        raise UnderbodyModelError(f"{path}: unreadable GLB: {e}") from e
    if len(tri) and (tri.min() < 0 or tri.max() >= len(pos)):
        raise UnderbodyModelError(f"{path}: GLB indices out of range")
    return pos, tri.astype(np.int32)


def read_mesh(path: Path) -> tuple[F64, I32]:
    """Read a PLY (open3d) or GLB mesh; raises :class:`UnderbodyModelError` when absent or empty."""
    if not path.is_file():
        raise UnderbodyModelError(f"{path}: mesh file not found")
    if path.suffix.lower() == ".glb":
        v, t = read_glb(path)
    else:
        import open3d as o3d  # heavy; only needed for files

        mesh = o3d.io.read_triangle_mesh(path)
        v = np.asarray(mesh.vertices, dtype=np.float64)
        t = np.asarray(mesh.triangles, dtype=np.int32)
    if len(v) == 0 or len(t) == 0:
        raise UnderbodyModelError(f"{path}: mesh has no triangles (unreadable or empty file)")
    return v, t


def write_mesh(path: Path, vertices_m: F64, triangles: I32) -> None:
    """Write PLY (binary, open3d) or GLB by suffix, atomically (temp file + rename)."""
    import os

    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        if path.suffix.lower() == ".glb":
            tmp.write_bytes(glb_bytes(vertices_m, triangles))
        else:
            import open3d as o3d

            mesh = o3d.geometry.TriangleMesh(
                o3d.utility.Vector3dVector(vertices_m), o3d.utility.Vector3iVector(triangles)
            )
            if not o3d.io.write_triangle_mesh(tmp, mesh, write_ascii=False, compressed=False):
                raise UnderbodyModelError(f"{path}: cannot write mesh")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def vertex_normals(vertices_m: F64, triangles: I32, facing: tuple[float, float, float] | None = None) -> F64:
    """Area-weighted unit vertex normals.

    ``facing``: when given, each face normal is first flipped to point along this direction,
    so inconsistent winding (or none, as raycasting needs none) still gives smooth normals.
    Vertices on no triangle get ``facing`` (or zero).
    """
    v = np.asarray(vertices_m, dtype=np.float64)
    t = np.asarray(triangles)
    fn = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])
    if facing is not None:
        fn *= np.where(fn @ np.asarray(facing, dtype=np.float64) < 0, -1.0, 1.0)[:, None]
    vn = np.stack(
        [sum(np.bincount(t[:, k], weights=fn[:, c], minlength=len(v)) for k in range(3)) for c in range(3)], axis=1
    )
    n = np.linalg.norm(vn, axis=1, keepdims=True)
    default = np.zeros_like(vn) if facing is None else np.tile(np.asarray(facing, dtype=np.float64), (len(v), 1))
    return np.asarray(np.divide(vn, n, out=default, where=n > 1e-15), dtype=np.float64)
