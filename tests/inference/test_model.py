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


class ScriptedOutOfMemoryAbove(torch.nn.Module):
    """Fails like a TorchScript model on a full GPU: a plain RuntimeError naming CUDA's OOM.

    TorchScript re-raises torch.OutOfMemoryError as RuntimeError (pytorch/pytorch#148642), so
    batch halving that caught only torch.cuda.OutOfMemoryError never fired for our models.
    """

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > self.limit:
            raise RuntimeError("CUDA out of memory. Tried to allocate 70.00 GiB")
        return x[:, :1]


def test_runner_halves_the_batch_when_a_scripted_model_runs_out_of_memory():
    module = torch.jit.script(ScriptedOutOfMemoryAbove(limit=3))
    runner = TileModel(module, output_kind="probabilities", device=torch.device("cpu"),
                       precision=None, batch_size=16, channels_last=False)
    batch = np.random.default_rng(1).random((10, 1, 8, 8), dtype=np.float32)
    result = runner(batch)
    assert runner.batch_size == 2
    np.testing.assert_allclose(result, batch[:, 0], atol=1e-3)


def test_runner_reports_a_real_model_error_as_such_not_as_out_of_memory():
    module = torch.jit.script(torch.nn.Conv2d(1, 1, 3, padding=1))
    runner = TileModel(module, output_kind="logits", device=torch.device("cpu"),
                       precision=None, batch_size=4, channels_last=False)
    with pytest.raises(ValueError, match="model must accept input of shape"):
        runner(np.zeros((2, 3, 8, 8), dtype=np.float32))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runner_recovers_from_a_real_cuda_out_of_memory_of_a_scripted_unet():
    from spheroseg.unet import UNet

    device = torch.device("cuda")
    module = torch.jit.script(UNet(depth=2, base_width=8).eval()).to(device)
    # Allow this process 2 GiB: 4096 tiles of 128^2 need about 4 GiB of activations, 512 fit.
    torch.cuda.set_per_process_memory_fraction(min(1.0, 2 * 2**30 / torch.cuda.get_device_properties(device).total_memory))
    try:
        runner = TileModel(module, output_kind="logits", device=device, precision=None, batch_size=4096,
                           channels_last=False)
        batch = np.random.default_rng(2).random((4096, 1, 128, 128), dtype=np.float32)
        result = runner(batch)
        assert runner.batch_size < 4096
        reference = TileModel(module, output_kind="logits", device=device, precision=None, batch_size=64,
                              channels_last=False)(batch[:128])
        np.testing.assert_allclose(result[:128].astype(np.float32), reference.astype(np.float32), atol=2e-3)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()


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


