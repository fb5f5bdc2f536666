"""A small 2-D U-Net: batch norm, same-size padding, TorchScript-friendly."""

from __future__ import annotations

import torch
from torch import nn


class ConvBlock(nn.Module):
    """Two 3x3 convolutions, each followed by batch norm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class UpBlock(nn.Module):
    """2x transposed-convolution upsampling, concatenation with the skip, then a ConvBlock."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.upsample = nn.ConvTranspose2d(width * 2, width, 2, stride=2)
        self.block = ConvBlock(width * 2, width)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.block(torch.cat([self.upsample(x), skip], dim=1))


class UNet(nn.Module):
    """U-Net (Ronneberger et al. 2015) with same-size padding, so output size == input size.

    Parameters
    ----------
    in_channels : int
        Number of input channels.
    out_channels : int
        Number of output channels (1: foreground logit).
    depth : int
        Number of 2x downsamplings; input height and width must be multiples of ``2**depth``.
    base_width : int
        Channels of the first block; doubled at each level.

    Raises
    ------
    ValueError
        If a size argument is not a positive integer.

    Examples
    --------
    >>> net = UNet(depth=2, base_width=4).eval()
    >>> net(torch.zeros(1, 1, 16, 16)).shape
    torch.Size([1, 1, 16, 16])
    """

    def __init__(
        self, in_channels: int = 1, out_channels: int = 1, *, depth: int = 3, base_width: int = 16
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("depth", depth), ("base_width", base_width)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        widths = [base_width * 2**level for level in range(depth + 1)]
        self.down = nn.ModuleList()
        previous = in_channels
        for width in widths:
            self.down.append(ConvBlock(previous, width))
            previous = width
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList([UpBlock(width) for width in reversed(widths[:-1])])
        self.head = nn.Conv2d(base_width, out_channels, 1)
        self.divisor = 2**depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        for index, block in enumerate(self.down):
            if index > 0:
                x = self.pool(x)
            x = block(x)
            skips.append(x)
        skips.pop()
        for block in self.up:
            x = block(x, skips.pop())
        return self.head(x)
