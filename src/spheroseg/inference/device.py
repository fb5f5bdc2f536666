"""Where and how precisely the model runs: torch device and autocast precision.

Torch is imported inside the functions, so that importing this module (and ``spheroseg
--help``) stays fast.
"""

from __future__ import annotations

from typing import Any

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def resolve_device(name: str, *, key: str = "predict.device") -> Any:
    """Return the torch device for ``auto`` (CUDA if present), ``cuda``, ``cuda:N`` or ``cpu``.

    `key` is the config key that set `name`, for messages.

    Raises
    ------
    ValueError
        If `name` is unknown, or a CUDA device is asked for that torch does not see.
    """
    import torch

    kind, _, number = str(name).partition(":")
    if kind not in DEVICES or (number and (kind != "cuda" or not number.isdigit())):
        raise ValueError(f"device must be one of {DEVICES} or 'cuda:N', got {name!r} (config key '{key}')")
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cuda" and (not torch.cuda.is_available() or int(number or 0) >= torch.cuda.device_count()):
        raise ValueError(
            f"device must be a CUDA device torch can see ({torch.cuda.device_count()} visible), got {name!r} "
            f"(config key '{key}')"
        )
    return torch.device(name)


def resolve_precision(name: str, device: Any) -> Any:
    """Return the autocast dtype for a precision name (None means float32).

    ``auto`` is bfloat16 on a CUDA device that supports it (else float16), bfloat16 on a CPU
    with native bfloat16 support (AVX512-BF16/AMX), else float32.

    Raises
    ------
    ValueError
        If `name` is unknown.
    """
    import torch

    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {name!r}")
    if name == "auto":
        if device.type == "cuda":
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            name = "bf16" if _cpu_has_bf16() else "fp32"
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[name]


def _cpu_has_bf16() -> bool:
    """Whether oneDNN has native bfloat16 kernels on this CPU."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def precision_name(dtype: Any) -> str:
    """The precision name of an autocast dtype from `resolve_precision` (None is ``fp32``)."""
    import torch

    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
