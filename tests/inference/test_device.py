"""Device and precision names."""

from __future__ import annotations

import pytest
import torch

from spheroseg.inference.device import resolve_device, resolve_precision


def test_resolve_device_and_precision():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_precision("fp32", torch.device("cpu")) is None
    assert resolve_precision("bf16", torch.device("cpu")) is torch.bfloat16
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp8", torch.device("cpu"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_resolve_device_rejects_cuda_without_a_gpu():
    with pytest.raises(ValueError, match="device must be a CUDA device torch can see"):
        resolve_device("cuda")



@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize(("resolve", "key"), [
    (resolve_device, "predict.device"),
    (lambda name: __import__("spheroseg.training.loop", fromlist=["x"]).resolve_device(name), "training.device"),
], ids=["predict", "train"])
def test_cuda_without_a_gpu_names_the_config_key(resolve, key):
    """Training passed any name to torch, whose AssertionError named neither the setting nor
    the key (workflow audit J02); predict named no key (J01)."""
    with pytest.raises(ValueError, match=rf"device must be a CUDA device torch can see \(0 visible\), got 'cuda' "
                                         rf"\(config key '{key}'\)"):
        resolve("cuda")
