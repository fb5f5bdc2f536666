"""`TileModel`: batches, out-of-memory back-off and the reduced-precision check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spheroseg.inference.model import TileModel


class OutOfMemoryAbove(torch.nn.Module):
    """Pretends the device holds at most `limit` tiles."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return x[:, :1]


def test_runner_halves_the_batch_on_out_of_memory_and_finishes():
    module = OutOfMemoryAbove(limit=2)
    runner = TileModel(module, output_kind="probabilities", device=torch.device("cpu"),
                       precision=None, batch_size=8, channels_last=False)
    batch = np.random.default_rng(0).random((7, 1, 8, 8), dtype=np.float32)
    result = runner(batch)
    assert runner.batch_size == 2 and module.sizes[:3] == [7, 4, 2]
    np.testing.assert_allclose(result, batch[:, 0], atol=1e-3)


def test_runner_gives_up_when_one_tile_does_not_fit():
    runner = TileModel(OutOfMemoryAbove(limit=0), output_kind="logits", device=torch.device("cpu"),
                       precision=None, batch_size=2, channels_last=False)
    with pytest.raises(RuntimeError, match="device memory must hold one tile"):
        runner(np.zeros((2, 1, 8, 8), dtype=np.float32))


class PrecisionSensitive(torch.nn.Module):
    """Returns a different answer under autocast, like a model that bf16 breaks."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shift = 5.0 if torch.is_autocast_enabled("cpu") else 0.0
        return x[:, :1] + shift


class Halved(torch.nn.Module):
    """The same answer with and without autocast (to bf16 rounding)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x[:, :1]


@pytest.mark.parametrize(
    ("module", "precision_after"),
    [(PrecisionSensitive(), None), (Halved(), torch.bfloat16)],
    ids=["falls-back", "keeps-bf16"],
)
def test_precision_check_falls_back_to_float32_only_when_the_answer_changes(module, precision_after):
    runner = TileModel(module, output_kind="logits", device=torch.device("cpu"),
                       precision=torch.bfloat16, batch_size=2, channels_last=False)
    runner.check_precision(np.zeros((2, 1, 8, 8), dtype=np.float32))
    assert runner.precision == precision_after


