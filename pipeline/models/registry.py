"""The registry of models by name: presets, network builders and fit functions."""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from pipeline.models import (
    efficientad,
    efficientad_fit,
    gaussian,
    memseg,
    memseg_fit,
    patchcore,
    patchcore_fit,
    seamseg,
    seamseg_fit,
    simplenet,
    simplenet_fit,
)
from pipeline.models.contract import U8
from pipeline.models.errors import ConfigError
from pipeline.models.training import FitContext


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One model: ``build(config)`` makes an untrained network, ``fit(config, images, ctx)`` a trained one.

    ``score_top_fraction(config)``: when the network's image score is a statistic of its map, the
    fraction of the map's pixels whose mean it is (0.0 = the map's maximum), so that the score can be
    taken again over a region of the map (the ROI, see :mod:`pipeline.preprocess.model`). None keeps
    the network's own score: SimpleNet scores coarse feature cells whose receptive field spans the ROI's
    edge (its map, upsampled and masked at pixel level, flattens the peak of a cell centred just outside
    the ROI). PatchCore's network score (the paper's Eq. 4 reweighting of the largest cell distance) is
    not a map statistic either, but its restored map's maximum ranks images better on the twin at every
    frame size (docs/benchmarks.md), so PatchCore takes the map's maximum where the map is restored.

    ``contrast_pool_px``: the max-pool of the contrast step (:mod:`pipeline.preprocess.contrast`) this model
    is trained with when the step is on and sets none; None: the pool scaled to the frame width.
    """

    name: str
    version: str
    config_type: type[Any]
    presets: Mapping[str, Any]
    build: Callable[[Any], nn.Module]
    fit: Callable[[Any, U8, FitContext], nn.Module]
    summary: str
    score_top_fraction: Callable[[Any], float] | None = None
    contrast_pool_px: int | None = None


def _map_max(cfg: Any) -> float:
    return 0.0


def _ead(size: str) -> dict[str, Any]:
    p = efficientad.PRESETS
    return {
        "paper": p["paper-s" if size == "small" else "paper-m"],
        "tiny": dataclasses.replace(p["tiny"], pdn_size=size),
        "twin": dataclasses.replace(p["twin-s"], pdn_size=size),
    }


MODELS: dict[str, ModelEntry] = {
    "gaussian": ModelEntry("gaussian", "1.0", gaussian.GaussianConfig, gaussian.PRESETS, gaussian.build,
                           gaussian.fit, "per-pixel colour Gaussian (trivial baseline)", _map_max),
    "patchcore": ModelEntry("patchcore", "1.0", patchcore.PatchCoreConfig, patchcore.PRESETS, patchcore.build,
                            patchcore_fit.fit, "memory bank of layer2+3 patch features, greedy coreset",
                            _map_max),
    "efficientad-s": ModelEntry("efficientad-s", "1.0", efficientad.EfficientADConfig, _ead("small"),
                                efficientad.build, efficientad_fit.fit, "PDN-S student-teacher + autoencoder",
                                _map_max),
    "efficientad-m": ModelEntry("efficientad-m", "1.0", efficientad.EfficientADConfig, _ead("medium"),
                                efficientad.build, efficientad_fit.fit, "PDN-M student-teacher + autoencoder",
                                _map_max),
    "simplenet": ModelEntry("simplenet", "1.0", simplenet.SimpleNetConfig, simplenet.PRESETS, simplenet.build,
                            simplenet_fit.fit, "feature adapter + discriminator on noisy features"),
    "memseg": ModelEntry("memseg", "1.0", memseg.MemSegConfig, memseg.PRESETS, memseg.build, memseg_fit.fit,
                         "ResNet18 from scratch + memory of normal features + MSFF + decoder, Perlin anomalies",
                         memseg.score_top_fraction),
    "seamseg": ModelEntry("seamseg", "2.1", seamseg.SeamSegConfig, seamseg.PRESETS, seamseg.build, seamseg_fit.fit,
                          "ours: conv head on the per-pixel Gaussian's statistics, trained on synthetic seam defects",
                          _map_max, contrast_pool_px=1),  # no max-pool: +0.047 image AUROC over 3 viewpoints
}


def get_entry(name: str) -> ModelEntry:
    """Raises ConfigError for an unknown name, listing the known ones."""
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; known: {sorted(MODELS)}") from None


def make_config(name: str, preset: str = "tiny", **overrides: Any) -> Any:
    """The preset's config with ``overrides`` (e.g. ``input_size_wh=(640, 480)``) applied.

    Raises:
        ConfigError: unknown model, preset or option.
    """
    entry = get_entry(name)
    if preset not in entry.presets:
        raise ConfigError(f"model {name!r} has no preset {preset!r}; use one of {sorted(entry.presets)}")
    cfg = entry.presets[preset]
    fields = {f.name for f in dataclasses.fields(cfg)}
    bad = sorted(set(overrides) - fields)
    if bad:
        raise ConfigError(f"model {name!r} has no option(s) {bad}; options: {sorted(fields)}")
    return dataclasses.replace(cfg, **{k: _checked(name, k, getattr(cfg, k), v) for k, v in overrides.items()})


def _checked(model: str, option: str, current: Any, value: Any) -> Any:
    """``value`` for ``option``, whose preset value is ``current``: an int is taken where a float is
    expected; a bool is not taken as a number. Raises ConfigError on any other type mismatch."""
    if current is None or value is None:  # an optional option (e.g. PatchCore's embed_dim)
        return value
    want = type(current)
    if want is float and type(value) is int:
        return float(value)
    if isinstance(value, want) and (want is bool) == isinstance(value, bool):
        return value
    raise ConfigError(f"model {model!r}: option {option} takes type {want.__name__} (preset: {current!r}), "
                      f"got {value!r}")


def parse_options(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` items, VALUE a Python literal (a list becomes a tuple), → {KEY: VALUE}.

    Raises ConfigError on an item without ``=`` or a key, or a value that is not a literal.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, eq, text = (part.strip() for part in item.partition("="))
        if not (eq and key):
            raise ConfigError(f"{item!r}: write OPTION=VALUE, e.g. steps=3000")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError) as e:
            raise ConfigError(f"{item!r}: the value is not a Python literal ({e}); quote a string, e.g. "
                              f"{key}='text'") from e
        out[key] = tuple(value) if isinstance(value, list) else value
    return out


def config_to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def config_from_dict(name: str, data: Mapping[str, Any]) -> Any:
    """Rebuild a config from its manifest form. Raises ConfigError on unknown or missing fields."""
    entry = get_entry(name)
    fields = {f.name for f in dataclasses.fields(entry.config_type)}
    bad = sorted(set(data) - fields)
    if bad:
        raise ConfigError(f"manifest config for {name!r} has unknown field(s) {bad}")
    clean = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    try:
        return entry.config_type(**clean)
    except TypeError as e:
        raise ConfigError(f"manifest config for {name!r} is invalid: {e}") from e
