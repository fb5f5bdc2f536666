from __future__ import annotations

import pytest
import torch

from spheroseg.unet import UNet


@pytest.mark.parametrize("depth", [1, 2, 3], ids=lambda d: f"depth{d}")
def test_same_size_and_scriptable(depth):
    net = UNet(depth=depth, base_width=4).eval()
    x = torch.randn(2, 1, 8 * 2**depth, 4 * 2**depth)
    scripted = torch.jit.script(net)
    with torch.no_grad():
        assert net(x).shape == (2, 1, *x.shape[2:])
        torch.testing.assert_close(scripted(x), net(x))
    assert net.divisor == 2**depth


@pytest.mark.parametrize("kwargs", [{"depth": 0}, {"base_width": -1}, {"in_channels": 1.5}], ids=str)
def test_bad_sizes(kwargs):
    with pytest.raises(ValueError, match="must be a positive integer"):
        UNet(**kwargs)
