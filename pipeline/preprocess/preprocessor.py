"""The preprocessing of one camera view, fitted once and applied identically in training and serving.

Four steps, each switchable so that masked (†) and unmasked runs compare:

* **photometric** (the paper's §9 future work, "contrast-normalization preprocessing suitable for
  real-time pipelines"): standardise each colour channel of the frame to mean
  ``PHOTOMETRIC_MEAN`` and standard deviation ``PHOTOMETRIC_STD``. Paint colour, lighting gain and
  exposure change from body to body; after this step they no longer move every pixel's value.

* **template** (paper §4.1): match the view's template (cut from a reference normal frame); reject a
  frame below the threshold; otherwise *extract the viewpoint region*, the frame-sized window at
  the matched offset, so that the view sits where it sat in the reference frame (zero-padded where
  the window leaves the frame). Anomaly maps are moved back to the caller's frame.
* **contrast** (ours, see :mod:`pipeline.preprocess.contrast`): the model sees each pixel's colour
  distance from its neighbourhood's median instead of its colour, computed on the raw frame (the
  photometric step, when on, still serves template matching). Sealant stands out from paint
  whatever either colour is.
* **roi** (paper §4.4): zero the input outside the ROI (seams + margin) and set the anomaly map
  there to its least anomalous value (zero for the non-negative maps). The ROI is the reference
  frame's seam mask widened by ``roi_margin_px`` (moved with the template offset), or a per-frame
  mask the caller passes (the twin knows its seams exactly).

The config is plain data for the artifact's manifest; the template and reference ROI are images
saved beside it (see :mod:`pipeline.preprocess.model`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.preprocess.contrast import check_contrast_sizes, local_contrast, scaled_contrast_px
from pipeline.preprocess.errors import FrameRejectedError, PreprocessError
from pipeline.preprocess.roi import Mask, roi_mask, translate
from pipeline.preprocess.template import U8, ViewTemplate, cut_template, match_template

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
#: the per-channel mean and standard deviation (0..255) a frame is mapped to by the photometric step
PHOTOMETRIC_MEAN = 128.0
PHOTOMETRIC_STD = 48.0


def standardize_channels(frame: U8) -> U8:
    """(H, W, 3) uint8 → each channel shifted and scaled to PHOTOMETRIC_MEAN ± PHOTOMETRIC_STD (clipped)."""
    x = frame.astype(np.float32)
    mean = x.mean(axis=(0, 1))
    std = np.maximum(x.std(axis=(0, 1)), 1.0)
    y = (x - mean) * (PHOTOMETRIC_STD / std) + PHOTOMETRIC_MEAN
    out: U8 = np.clip(y + 0.5, 0, 255).astype(np.uint8)
    return out


@dataclass(frozen=True, slots=True)
class PreprocessConfig:
    """What to do; saved in the manifest under ``preprocess.config``.

    ``template_box_xywh`` is where the template is cut from the reference frame (px; None = the centred
    half-size box). ``template_threshold`` is the TM_CCOEFF_NORMED score below which a frame is rejected.
    ``roi_margin_px`` widens the seams into the ROI. ``photometric`` standardises each frame's colour
    channels before the other steps. ``contrast`` replaces the model's input with the local contrast
    over a ``contrast_kernel_px`` window, max-pooled over ``contrast_pool_px``; None sizes are scaled
    to the frame width when the preprocessor is built (:func:`scaled_contrast_px`).
    """

    template: bool = False
    template_threshold: float = 0.7
    template_box_xywh: tuple[int, int, int, int] | None = None
    roi: bool = False
    roi_margin_px: int = 8
    photometric: bool = False
    contrast: bool = False
    contrast_kernel_px: int | None = None
    contrast_pool_px: int | None = None

    def __post_init__(self) -> None:
        if not -1.0 <= self.template_threshold <= 1.0:
            raise PreprocessError(f"template threshold {self.template_threshold} is outside [-1, 1]")
        if self.roi_margin_px < 0:
            raise PreprocessError(f"ROI margin must be >= 0 px, got {self.roi_margin_px}")
        check_contrast_sizes(self.contrast_kernel_px, self.contrast_pool_px)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PreprocessConfig:
        """Raises PreprocessError on unknown fields or bad values."""
        known = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(data) - known)
        if bad:
            raise PreprocessError(f"preprocess config has unknown field(s) {bad}")
        clean: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        try:
            return cls(**clean)
        except TypeError as e:
            raise PreprocessError(f"preprocess config is invalid: {e}") from e


@dataclass(frozen=True, slots=True, eq=False)
class PreprocessedBatch:
    """Frames ready for the network, and what is needed to map results back.

    ``images`` (N, H, W, 3) uint8 in the reference frame's coordinates, zero outside the ROI;
    ``roi`` (N, H, W) bool in the same coordinates (None without ROI masking); ``match_scores`` (N,)
    TM_CCOEFF_NORMED peaks (NaN without a template); ``offsets_xy`` (N, 2) px of each frame's view
    relative to the reference; ``accepted`` (N,) whether each frame passed the threshold.
    """

    images: U8
    roi: Mask | None
    match_scores: F32
    offsets_xy: npt.NDArray[np.int32]
    accepted: npt.NDArray[np.bool_]

    def take(self, idx: npt.NDArray[np.intp]) -> PreprocessedBatch:
        """The frames at ``idx`` of this batch."""
        return PreprocessedBatch(self.images[idx], None if self.roi is None else self.roi[idx], self.match_scores[idx],
                                 self.offsets_xy[idx], self.accepted[idx])

    def require_accepted(self) -> None:
        """Raises FrameRejectedError naming the frames below the threshold."""
        if self.accepted.all():
            return
        idx = tuple(int(i) for i in np.flatnonzero(~self.accepted))
        scores = tuple(round(float(self.match_scores[i]), 3) for i in idx)
        raise FrameRejectedError(f"frame(s) {list(idx)} do not show the trained view: template match "
                            f"{list(scores)} below the threshold", idx, scores)


class Preprocessor:
    """Fitted preprocessing of one view: a config, and the template and reference ROI it needs.

    Build with :meth:`fit` from a reference normal frame (and its seam mask when ``config.roi``).
    """

    def __init__(self, config: PreprocessConfig, template: ViewTemplate | None = None,
                 roi_reference: Mask | None = None, frame_size_wh: tuple[int, int] | None = None) -> None:
        if config.template and template is None:
            raise PreprocessError("template matching is on but no template was given")
        if config.roi and roi_reference is None:
            raise PreprocessError("ROI masking is on but no reference ROI was given")
        if _enabled(config) and frame_size_wh is None:
            raise PreprocessError("preprocessing needs the reference frame size")
        if roi_reference is not None and frame_size_wh is not None and roi_reference.shape != frame_size_wh[::-1]:
            raise PreprocessError(f"reference ROI is {roi_reference.shape[1]}x{roi_reference.shape[0]} px, "
                                  f"the frames {frame_size_wh[0]}x{frame_size_wh[1]}")
        if config.contrast and frame_size_wh is not None:
            kernel, pool = scaled_contrast_px(frame_size_wh[0])
            config = dataclasses.replace(config, contrast_kernel_px=config.contrast_kernel_px or kernel,
                                         contrast_pool_px=config.contrast_pool_px or pool)
        self.config = config
        self.template = template if config.template else None
        self.roi_reference = roi_reference if config.roi else None
        self.frame_size_wh = frame_size_wh

    @classmethod
    def fit(cls, config: PreprocessConfig, reference: U8, seam_mask: npt.ArrayLike | None = None) -> Preprocessor:
        """Cut the template from ``reference`` (H, W, 3) RGB uint8 and widen ``seam_mask`` (H, W) into the ROI.

        Raises:
            PreprocessError: ROI masking without a seam mask, a seam mask of another size, a flat template.
        """
        ref = np.asarray(reference)
        if ref.ndim != 3 or ref.shape[2] != 3 or ref.dtype != np.uint8:
            raise PreprocessError(f"the reference frame must be (H, W, 3) uint8, got {ref.dtype} {ref.shape}")
        H, W = ref.shape[:2]
        template = None
        if config.template:  # the template is cut from the frame as the matcher will see frames
            matched = standardize_channels(ref) if config.photometric else ref
            template = cut_template(matched, config.template_box_xywh, config.template_threshold)
        roi = None
        if config.roi:
            if seam_mask is None:
                raise PreprocessError("ROI masking needs the seam mask (or ROI masks) of the reference frame")
            seams = np.asarray(seam_mask)
            if seams.shape != (H, W):
                raise PreprocessError(f"seam mask {seams.shape} does not match the reference frame {(H, W)}")
            roi = roi_mask(seams, config.roi_margin_px)
        return cls(config, template, roi, (W, H))

    @property
    def enabled(self) -> bool:
        return _enabled(self.config)

    def apply(self, frames: U8, roi: Mask | None = None) -> PreprocessedBatch:
        """Match, align and mask ``frames`` (N, H, W, 3) uint8.

        ``roi`` (N, H, W) bool are per-frame ROI masks in frame coordinates, used instead of the
        reference ROI (as given: they already include their margin). Rejected frames are flagged in
        the result, not raised; call :meth:`PreprocessedBatch.require_accepted` to insist.

        Raises:
            PreprocessError: frames of another size than the reference, or ``roi`` of the wrong shape.
        """
        n = len(frames)
        scores = np.full(n, np.nan, np.float32)
        offsets = np.zeros((n, 2), np.int32)
        if not self.enabled:
            return PreprocessedBatch(frames, None, scores, offsets, np.ones(n, bool))
        assert self.frame_size_wh is not None
        if frames.shape[1:3] != self.frame_size_wh[::-1]:
            raise PreprocessError(f"frames are {frames.shape[2]}x{frames.shape[1]} px but the view was fitted on "
                                  f"{self.frame_size_wh[0]}x{self.frame_size_wh[1]}")
        if roi is not None and roi.shape != frames.shape[:3]:
            raise PreprocessError(f"ROI masks {roi.shape} do not match the frames {frames.shape[:3]}")
        accepted = np.ones(n, bool)
        out = np.empty_like(frames)
        masks = np.zeros(frames.shape[:3], bool) if self.config.roi else None
        # with the contrast step, the standardised frame serves template matching only
        standardize = self.config.photometric and (self.template is not None or not self.config.contrast)
        for i, raw in enumerate(frames):
            frame = standardize_channels(raw) if standardize else raw
            off = (0, 0)
            if self.template is not None:
                m = match_template(frame, self.template)
                scores[i], accepted[i] = m.score, m.accepted
                off = m.offset_xy if m.accepted else (0, 0)
                offsets[i] = off
            if masks is not None:
                masks[i] = (translate(np.asarray(roi[i], bool), (-off[0], -off[1])) if roi is not None
                            else self.roi_reference)
            out[i] = self.finish(raw if self.config.contrast else frame, off, None if masks is None else masks[i])
        if not accepted.all():
            log.info("template: %d of %d frame(s) below threshold %.2f", int((~accepted).sum()), n,
                     self.config.template_threshold)
        return PreprocessedBatch(out, masks, scores, offsets, accepted)

    def finish(self, frame: U8, offset_xy: tuple[int, int] = (0, 0), roi: Mask | None = None) -> U8:
        """The steps after the template match on one ``frame`` (H, W, 3) uint8 as the camera saw it: the
        contrast step when on, the move by the matched ``offset_xy`` into the reference frame's
        coordinates, and zero outside ``roi`` (in those coordinates; None: the reference ROI; nothing
        without ROI masking). :meth:`apply` runs it on every frame."""
        img = frame
        if self.config.contrast:
            assert self.config.contrast_kernel_px is not None and self.config.contrast_pool_px is not None
            img = local_contrast(frame, self.config.contrast_kernel_px, self.config.contrast_pool_px)
        img = translate(img, (-offset_xy[0], -offset_xy[1]))
        mask = roi if roi is not None else self.roi_reference
        if self.config.roi and mask is not None:
            img[~mask] = 0
        return img

    def restore_maps(self, maps: F32, batch: PreprocessedBatch) -> F32:
        """Anomaly maps (N, H, W) of ``batch.images`` → the caller's frame coordinates.

        Outside the ROI, and where the view was shifted out of the frame, a map holds the least
        anomalous value: zero, or the map's own minimum where it goes below zero (EfficientAD's
        quantile-normalised maps and SimpleNet's negated discriminator do; a zero there would rank
        every masked-out pixel above the view's normal ones).
        """
        if not self.enabled:
            return maps
        out = np.empty_like(maps)
        for i, m in enumerate(maps):
            floor = np.float32(min(0.0, float(m.min())))
            if batch.roi is not None:
                m = np.where(batch.roi[i], m, floor)
            dx, dy = (int(v) for v in batch.offsets_xy[i])
            out[i] = translate(m, (dx, dy), float(floor))
        return out

    def without(self, roi: bool = False, template: bool = False, photometric: bool = False) -> Preprocessor:
        """This preprocessor with ROI masking, template matching and/or the photometric step off (ablations).

        The contrast step stays: a model trained on contrast images cannot read colours.
        """
        cfg = dataclasses.replace(self.config, roi=self.config.roi and not roi,
                                  template=self.config.template and not template,
                                  photometric=self.config.photometric and not photometric)
        return Preprocessor(cfg, self.template, self.roi_reference,
                            self.frame_size_wh if _enabled(cfg) else None)

    def describe(self) -> str:
        parts = ["photometric"] if self.config.photometric else []
        if self.config.contrast:
            parts.append(f"local contrast {self.config.contrast_kernel_px} px pooled {self.config.contrast_pool_px} px")
        if self.template is not None:
            parts.append(f"template {self.template.box_xywh} thr {self.config.template_threshold:.2f}")
        if self.roi_reference is not None:
            parts.append(f"ROI margin {self.config.roi_margin_px} px ({100 * self.roi_reference.mean():.1f}% of frame)")
        return ", ".join(parts) or "none"


def _enabled(config: PreprocessConfig) -> bool:
    return config.template or config.roi or config.photometric or config.contrast
