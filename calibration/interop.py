"""Import and export of camera calibrations: Kalibr camchain YAML, OpenCV FileStorage YAML, ROS camera_info.

* Kalibr camchain: ``cam0, cam1, ...`` with ``intrinsics [fu, fv, pu, pv]``, ``distortion_model``
  (``radtan`` = k1 k2 p1 p2, ``equidistant`` = fisheye k1..k4), ``resolution [w, h]`` and, for
  cam1 onwards, ``T_cn_cnm1`` (previous camera's frame into this camera's). Import puts cam0 at
  the cell origin.
* OpenCV FileStorage: per camera ``<id>_camera_matrix``, ``<id>_distortion_coefficients``,
  ``<id>_image_size``, ``<id>_T_cell_cam``, ``<id>_model``, and ``camera_ids`` (comma separated).
  A single-camera file with plain ``camera_matrix`` / ``distortion_coefficients`` /
  ``image_width`` / ``image_height`` (OpenCV's calibration sample) also imports.
* ROS ``camera_info`` YAML: one file per camera (``plumb_bob``, ``rational_polynomial`` or
  ``equidistant``); poses are not part of the format.

Every importer raises :class:`InteropError` naming the file and field; exporters raise it for a
camera the format cannot express (e.g. rational distortion in Kalibr).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import yaml

from calibration.camera import CameraModel
from calibration.errors import InteropError
from calibration.rig import Rig, atomic_write_text
from calibration.se3 import invert, is_rigid

log = logging.getLogger(__name__)
F64 = npt.NDArray[np.float64]


def _K(fx: float, fy: float, cx: float, cy: float) -> F64:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def _camera(src: str, cam_id: str, K: Any, dist: Any, w: Any, h: Any, T: Any, model: Any) -> CameraModel:
    try:
        return CameraModel(cam_id, np.asarray(K, dtype=np.float64), np.asarray(dist, dtype=np.float64),
                           int(w), int(h), np.asarray(T, dtype=np.float64), model)
    except (ValueError, TypeError) as e:
        raise InteropError(f"{src}: camera {cam_id}: {e}") from e


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InteropError(f"{path}: cannot read: {e.strerror or e}") from e
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InteropError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from e


# --- Kalibr ------------------------------------------------------------------------------------
def kalibr_to_text(rig: Rig) -> str:
    doc: dict[str, Any] = {}
    prev: CameraModel | None = None
    for i, c in enumerate(rig.cameras):
        d = c.dist
        if c.model == "fisheye":
            dm, coeffs = "equidistant", d.tolist()
        else:
            if d.size > 4 and np.any(np.abs(d[4:]) > 1e-12):
                raise InteropError(f"camera {c.camera_id}: Kalibr radtan has 4 coefficients, this camera uses {d.size}")
            dm, coeffs = "radtan", d[:4].tolist()
        entry: dict[str, Any] = {
            "camera_id": c.camera_id, "camera_model": "pinhole",
            "intrinsics": [float(c.K[0, 0]), float(c.K[1, 1]), float(c.K[0, 2]), float(c.K[1, 2])],
            "distortion_model": dm, "distortion_coeffs": coeffs, "resolution": [c.width_px, c.height_px],
            "rostopic": f"/{c.camera_id}/image_raw",
        }
        if prev is not None:
            entry["T_cn_cnm1"] = (invert(c.T_cell_cam) @ prev.T_cell_cam).tolist()
        doc[f"cam{i}"] = entry
        prev = c
    return yaml.safe_dump(doc, sort_keys=False)


def kalibr_from_doc(doc: Any, src: str) -> Rig:
    if not isinstance(doc, dict) or "cam0" not in doc:
        raise InteropError(f"{src}: not a Kalibr camchain (no cam0)")
    cams: list[CameraModel] = []
    T_cell_prev = np.eye(4)
    for i in range(len(doc)):
        key = f"cam{i}"
        if key not in doc:
            break
        e = doc[key]
        try:
            fu, fv, pu, pv = (float(x) for x in e["intrinsics"])
            dm = e.get("distortion_model", "radtan")
            w, h = e["resolution"]
            model = {"radtan": "pinhole", "equidistant": "fisheye"}.get(dm)
            if model is None:
                raise InteropError(f"{src}: {key}.distortion_model {dm!r} is not supported (radtan, equidistant)")
            T = np.eye(4)
            if i > 0:
                T_cn_cnm1 = np.asarray(e["T_cn_cnm1"], dtype=np.float64)
                if not is_rigid(T_cn_cnm1, atol=1e-5):
                    raise InteropError(f"{src}: {key}.T_cn_cnm1 is not a rigid 4x4 transform")
                T = T_cell_prev @ invert(T_cn_cnm1)
            cams.append(_camera(src, str(e.get("camera_id", key)), _K(fu, fv, pu, pv), e["distortion_coeffs"],
                                w, h, T, model))
            T_cell_prev = T
        except InteropError:
            raise
        except (KeyError, TypeError, ValueError) as ex:
            raise InteropError(f"{src}: {key}: missing or malformed field ({ex})") from ex
    return Rig(tuple(cams), name="kalibr-import")


# --- OpenCV FileStorage --------------------------------------------------------------------------
def opencv_write(rig: Rig, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp.yaml")
    fs = cv2.FileStorage(str(tmp), cv2.FILE_STORAGE_WRITE)
    try:
        fs.write("camera_ids", ",".join(rig.camera_ids))
        for c in rig.cameras:
            fs.write(f"{c.camera_id}_model", c.model)
            fs.write(f"{c.camera_id}_image_size", np.array([c.width_px, c.height_px], dtype=np.int32))
            fs.write(f"{c.camera_id}_camera_matrix", c.K)
            fs.write(f"{c.camera_id}_distortion_coefficients", c.dist.reshape(1, -1))
            fs.write(f"{c.camera_id}_T_cell_cam", c.T_cell_cam)
    finally:
        fs.release()
    os.replace(tmp, path)


def opencv_read(path: Path) -> Rig:
    if not path.is_file():
        raise InteropError(f"{path}: file not found")
    try:
        fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    except (cv2.error, SystemError) as e:  # OpenCV raises SystemError for some parse failures
        raise InteropError(f"{path}: not an OpenCV FileStorage file ({str(e).strip().splitlines()[-1]})") from e
    try:
        if not fs.isOpened():
            raise InteropError(f"{path}: not an OpenCV FileStorage file")

        def mat(name: str) -> F64:
            node = fs.getNode(name)
            m = None if node.empty() else node.mat()
            if m is None:
                raise InteropError(f"{path}: missing or malformed field {name!r}")
            return np.asarray(m, dtype=np.float64)

        ids_node = fs.getNode("camera_ids")
        if ids_node.empty():
            w, h = int(fs.getNode("image_width").real()), int(fs.getNode("image_height").real())
            return Rig((_camera(str(path), "cam0", mat("camera_matrix"), mat("distortion_coefficients").ravel(),
                                w, h, np.eye(4), "pinhole"),), name="opencv-import")
        cams = []
        for cid in ids_node.string().split(","):
            size = mat(f"{cid}_image_size").ravel()
            model = fs.getNode(f"{cid}_model").string() or "pinhole"
            cams.append(_camera(str(path), cid, mat(f"{cid}_camera_matrix"),
                                mat(f"{cid}_distortion_coefficients").ravel(), size[0], size[1],
                                mat(f"{cid}_T_cell_cam"), model))
        return Rig(tuple(cams), name="opencv-import")
    finally:
        fs.release()


# --- ROS camera_info ---------------------------------------------------------------------------
_ROS_MODELS = {"plumb_bob": "pinhole", "rational_polynomial": "pinhole", "equidistant": "fisheye"}


def ros_to_text(c: CameraModel) -> str:
    if c.model != "fisheye" and c.dist.size not in (4, 5, 8):
        raise InteropError(f"camera {c.camera_id}: ROS camera_info has no model for {c.dist.size} coefficients")
    dm = "equidistant" if c.model == "fisheye" else ("rational_polynomial" if c.dist.size == 8 else "plumb_bob")
    d = c.dist.tolist()
    P = np.concatenate([c.K, np.zeros((3, 1))], axis=1)
    doc = {
        "image_width": c.width_px, "image_height": c.height_px, "camera_name": c.camera_id,
        "camera_matrix": {"rows": 3, "cols": 3, "data": c.K.ravel().tolist()},
        "distortion_model": dm, "distortion_coefficients": {"rows": 1, "cols": len(d), "data": d},
        "rectification_matrix": {"rows": 3, "cols": 3, "data": np.eye(3).ravel().tolist()},
        "projection_matrix": {"rows": 3, "cols": 4, "data": P.ravel().tolist()},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def ros_from_doc(doc: Any, src: str) -> CameraModel:
    if not isinstance(doc, dict):
        raise InteropError(f"{src}: not a ROS camera_info YAML (expected a mapping)")
    try:
        dm = doc.get("distortion_model", "plumb_bob")
        if dm not in _ROS_MODELS:
            raise InteropError(f"{src}: distortion_model {dm!r} is not supported ({', '.join(_ROS_MODELS)})")
        K = np.asarray(doc["camera_matrix"]["data"], dtype=np.float64).reshape(3, 3)
        dist = np.asarray(doc["distortion_coefficients"]["data"], dtype=np.float64)
        return _camera(src, str(doc.get("camera_name") or "cam0").replace("/", "_"), K, dist,
                       doc["image_width"], doc["image_height"], np.eye(4), _ROS_MODELS[dm])
    except InteropError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise InteropError(f"{src}: missing or malformed field ({e})") from e


# --- entry points -----------------------------------------------------------------------------
FORMATS = ("kalibr", "opencv", "ros")


def export_rig(rig: Rig, fmt: str, out: Path) -> list[Path]:
    """Write ``rig`` in ``fmt``; ``ros`` writes one ``<id>.yaml`` per camera into the folder ``out``."""
    if fmt == "kalibr":
        atomic_write_text(out, kalibr_to_text(rig))
        return [out]
    if fmt == "opencv":
        opencv_write(rig, out)
        return [out]
    if fmt == "ros":
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for c in rig.cameras:
            p = out / f"{c.camera_id}.yaml"
            atomic_write_text(p, ros_to_text(c))
            paths.append(p)
        return paths
    raise InteropError(f"unknown format {fmt!r}; use one of {FORMATS}")


def import_rig(fmt: str, paths: list[Path]) -> Rig:
    """Read a rig from ``paths`` in ``fmt`` (``ros`` takes one file per camera)."""
    if fmt == "kalibr":
        return kalibr_from_doc(_read_yaml(paths[0]), str(paths[0]))
    if fmt == "opencv":
        return opencv_read(paths[0])
    if fmt == "ros":
        cams = tuple(ros_from_doc(_read_yaml(p), str(p)) for p in paths)
        try:
            return Rig(cams, name="ros-import")
        except ValueError as e:
            raise InteropError(str(e)) from e
    raise InteropError(f"unknown format {fmt!r}; use one of {FORMATS}")
