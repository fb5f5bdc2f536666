"""The precision decision: fixed test tiles, a record of what was decided, fp32 fallback."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spheroseg.inference.model import TileModel
from spheroseg.inference.precision import decide_precision, precision_test_tiles

# torch.jit is deprecated in torch >= 2.13 but is the model format spheroseg ships.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning")
CARD = {"input": {"normalization": {"kind": "percentile", "low": 1.0, "high": 99.8}}}


class SteepConvolution(torch.nn.Module):
    """A 1x1 convolution with steep logits: autocast runs it, and rounds it visibly."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 1)
        with torch.no_grad():
            self.conv.weight.fill_(40.0)
            self.conv.bias.fill_(-20.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _runner(precision: torch.dtype | None) -> TileModel:
    return TileModel(torch.jit.script(SteepConvolution().eval()), output_kind="logits",
                     device=torch.device("cpu"), precision=precision, batch_size=1)


@pytest.mark.parametrize(("channels", "divisor", "size"), [(1, 8, 256), (3, 24, 264)],
                         ids=["one-channel", "three-channels-divisor-24"])
def test_test_tiles_are_fixed_normalised_bodies(channels, divisor, size):
    tiles = precision_test_tiles(CARD, channels=channels, divisor=divisor)
    again = precision_test_tiles(CARD, channels=channels, divisor=divisor)
    assert tiles.shape == (2, channels, size, size) and tiles.dtype == np.float32
    np.testing.assert_array_equal(tiles, again)
    assert np.isfinite(tiles).all() and 0.0 < np.median(tiles) < 0.5 < tiles.max()
    assert not np.array_equal(tiles[0], tiles[1])


@pytest.mark.parametrize(
    ("requested", "candidate", "tolerance", "expected", "checked"),
    [("auto", torch.bfloat16, 0.5, "bf16", True), ("auto", torch.bfloat16, 0.0, "fp32", True),
     ("bf16", torch.bfloat16, 0.0, "bf16", False), ("auto", None, 0.0, "fp32", False),
     ("fp32", None, 0.5, "fp32", False)],
    ids=["auto-keeps-bf16", "auto-falls-back-beyond-tolerance", "forced-bf16-unchecked",
         "auto-without-native-support", "forced-fp32"],
)
def test_decision_is_recorded(requested, candidate, tolerance, expected, checked):
    runner = _runner(candidate)
    record = decide_precision(runner, CARD, requested=requested, channels=1, divisor=8,
                              tolerance=tolerance)
    assert record["precision"] == expected and record["requested"] == requested
    assert (runner.precision is None) == (expected == "fp32")
    assert (record["checked_on"] is not None) == checked
    if checked:
        assert "synthetic test tiles" in record["checked_on"] and record["max_difference"] > 0
    again = decide_precision(_runner(candidate), CARD, requested=requested, channels=1, divisor=8,
                             tolerance=tolerance)
    assert again == record
