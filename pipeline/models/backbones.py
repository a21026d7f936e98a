"""Backbones written in plain torch with torchvision's parameter names (no torchvision, no download).

``resnet18`` and ``wide_resnet50_2`` stop after ``layer3`` (the anomaly models use layer2 + layer3).
A torchvision state dict (``torch.save(model.state_dict())``) loads with :func:`load_backbone_weights`;
``layer4``/``fc`` entries are ignored. Without a weights file the backbone is randomly initialised
(Kaiming, as torchvision) and :func:`calibrate_batchnorm` re-estimates its BatchNorm statistics on the
training images, so activations stay well scaled through the random layers.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from pipeline.models.errors import ArtifactError, ConfigError

log = logging.getLogger(__name__)

BACKBONES = ("resnet18", "wide_resnet50_2")
#: Channels of (layer1, layer2, layer3) and the stride of each.
FEATURE_CHANNELS = {"resnet18": (64, 128, 256), "wide_resnet50_2": (256, 512, 1024)}
FEATURE_STRIDES = (4, 8, 16)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + idt)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, width_factor: int = 2) -> None:
        super().__init__()
        width = planes * width_factor
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return torch.relu(y + idt)


class ResNetTrunk(nn.Module):
    """ResNet stem + layer1..layer3. ``forward`` returns the three feature maps (strides 4, 8, 16)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        if name not in BACKBONES:
            raise ConfigError(f"unknown backbone {name!r}; use one of {BACKBONES}")
        self.name = name
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        if name == "resnet18":
            self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
            self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128))
            self.layer3 = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256))
        else:
            self.layer1 = self._bottlenecks(64, 64, 3, 1)
            self.layer2 = self._bottlenecks(256, 128, 4, 2)
            self.layer3 = self._bottlenecks(512, 256, 6, 2)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def _bottlenecks(inplanes: int, planes: int, n: int, stride: int) -> nn.Sequential:
        blocks = [Bottleneck(inplanes, planes, stride)]
        blocks += [Bottleneck(planes * 4, planes) for _ in range(n - 1)]
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        f1 = self.layer1(x)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        return f1, f2, f3


def load_backbone_weights(trunk: ResNetTrunk, path: str | Path) -> None:
    """Load a torchvision-format state dict (layer4/fc ignored).

    Raises:
        ArtifactError: the file is missing, unreadable, or lacks parameters of stem..layer3.
    """
    p = Path(path)
    if not p.is_file():
        raise ArtifactError(f"backbone weights {p} not found")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ArtifactError(f"backbone weights {p} are not a readable torch state dict: {e}") from e
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ArtifactError(f"backbone weights {p}: expected a state dict, got {type(state).__name__}")
    own = trunk.state_dict()
    wanted = {k: v for k, v in state.items() if k in own}
    missing = sorted(set(own) - set(wanted))
    if missing:
        raise ArtifactError(f"backbone weights {p} do not fit {trunk.name}: {len(missing)} missing, e.g. {missing[:3]}")
    bad = [k for k, v in wanted.items() if tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        raise ArtifactError(f"backbone weights {p} do not fit {trunk.name}: shape mismatch at {bad[:3]}")
    trunk.load_state_dict(wanted)
    log.info("loaded %s weights from %s", trunk.name, p)


@torch.no_grad()
def calibrate_batchnorm(module: nn.Module, batches: list[torch.Tensor]) -> None:
    """Re-estimate BatchNorm running statistics on data (cumulative average), leaving weights untouched.

    Used for randomly initialised backbones: their default statistics (mean 0, var 1) make
    activations blow up layer after layer. Leaves ``module`` in eval mode.
    """
    bns = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    module.train()
    for b in batches:
        module(b)
    module.eval()
    for bn in bns:
        bn.momentum = 0.1
