"""EfficientAD's patch description networks (PDN-S, PDN-M) and its autoencoder, in plain torch.

Both PDNs map an image (N, 3, H, W) to (N, C_out, H/4 - 8, W/4 - 8) features with a 33 px (S) or
33 px (M) receptive field; no padding in the last layers keeps features local.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

PDN_SIZES = ("small", "medium")


def pdn(size: str, out_channels: int) -> nn.Sequential:
    """The paper's PDN-S or PDN-M with ``out_channels`` output channels (384 for a teacher)."""
    if size == "small":
        return nn.Sequential(
            nn.Conv2d(3, 128, 4, padding=3), nn.ReLU(inplace=True), nn.AvgPool2d(2, 2, padding=1),
            nn.Conv2d(128, 256, 4, padding=3), nn.ReLU(inplace=True), nn.AvgPool2d(2, 2, padding=1),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, out_channels, 4),
        )
    if size == "medium":
        return nn.Sequential(
            nn.Conv2d(3, 256, 4, padding=3), nn.ReLU(inplace=True), nn.AvgPool2d(2, 2, padding=1),
            nn.Conv2d(256, 512, 4, padding=3), nn.ReLU(inplace=True), nn.AvgPool2d(2, 2, padding=1),
            nn.Conv2d(512, 512, 1), nn.ReLU(inplace=True),
            nn.Conv2d(512, 512, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(512, out_channels, 4), nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 1),
        )
    raise ValueError(f"unknown PDN size {size!r}; use one of {PDN_SIZES}")


def pdn_output_hw(size: str, input_hw: tuple[int, int]) -> tuple[int, int]:
    """Spatial size of a PDN's output for an input of ``input_hw``."""
    with torch.no_grad():
        y = pdn(size, 1)(torch.zeros(1, 3, *input_hw))
    return int(y.shape[2]), int(y.shape[3])


class AutoEncoder(nn.Module):
    """EfficientAD's convolutional autoencoder; its output has the PDN's spatial size ``out_hw``.

    The decoder upsamples to fixed sizes scaled from the paper's 256 px schedule to this input size,
    so the graph has no data-dependent shapes (ONNX friendly).
    """

    def __init__(self, input_hw: tuple[int, int], out_hw: tuple[int, int], out_channels: int, base: int = 64) -> None:
        super().__init__()
        h, w = input_hw
        self.enc = nn.ModuleList([
            nn.Conv2d(3, 32, 4, 2, 1), nn.Conv2d(32, 32, 4, 2, 1), nn.Conv2d(32, base, 4, 2, 1),
            nn.Conv2d(base, base, 4, 2, 1), nn.Conv2d(base, base, 4, 2, 1),
        ])
        eh, ew = h, w
        for _ in range(5):
            eh, ew = (eh + 2 - 4) // 2 + 1, (ew + 2 - 4) // 2 + 1
        if eh < 1 or ew < 1:
            raise ValueError(f"autoencoder input {input_hw} is too small (need >= 32 px)")
        self.bottleneck = nn.Conv2d(base, base, (min(8, eh), min(8, ew)))
        schedule = (3, 8, 15, 32, 63, 127)
        self.sizes = [(max(2, round(s * h / 256)), max(2, round(s * w / 256))) for s in schedule]
        self.out_hw = out_hw
        self.dec = nn.ModuleList([nn.Conv2d(base, base, 4, 1, 2) for _ in schedule])
        self.head = nn.Sequential(nn.Conv2d(base, base, 3, 1, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(base, out_channels, 3, 1, 1))
        self.dropout = nn.Dropout(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.enc:
            x = F.relu(conv(x))
        x = self.bottleneck(x)
        for size, conv in zip(self.sizes, self.dec, strict=True):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            x = self.dropout(F.relu(conv(x)))
        x = F.interpolate(x, size=self.out_hw, mode="bilinear", align_corners=False)
        out: torch.Tensor = self.head(x)
        return out
