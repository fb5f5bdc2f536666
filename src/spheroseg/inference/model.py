"""The model: loading a TorchScript file with its verified card, checking and freezing it,
choosing its input channels, and running batches of tiles through it (`TileModel`)."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from spheroseg.modelcard import read_verified_card

log = logging.getLogger(__name__)

AUTO_PRECISION_TOLERANCE = 0.02


def load_model(model_path: str | os.PathLike[str], *, device: Any) -> tuple[Any, dict[str, Any]]:
    """Load a model and its verified card (see `prepare_model` for freezing).

    Parameters
    ----------
    model_path : str or PathLike
        TorchScript file (``.pt``); the card (same name, ``.json``) must sit beside it and
        match its SHA-256. ``torch.export`` programs (``.pt2``) are refused: loading one
        unpickles its contents, which can run code from the file.
    device : torch.device

    Returns
    -------
    (module, card)

    Raises
    ------
    ModelCardError
        If the model file or its card is missing, invalid, or they disagree.
    ValueError
        If the file is a ``.pt2`` program or not a loadable TorchScript archive.
    """
    import torch

    model_path = Path(model_path)
    if model_path.suffix == ".pt2":
        raise ValueError(
            "model file must be a TorchScript archive (.pt), got a torch.export program; loading "
            f"one unpickles its contents, which can run code (in {model_path})"
        )
    card = read_verified_card(model_path)
    with warnings.catch_warnings():
        # torch.jit is deprecated in torch >= 2.13 but is the format users ship; its
        # warnings would turn into errors under `python -W error`.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        try:
            module = torch.jit.load(str(model_path), map_location=device).eval()
        except (RuntimeError, ValueError, OSError, EOFError, KeyError) as err:
            raise ValueError(
                f"model file must be a TorchScript archive, got "
                f"one that does not load: {_last_line(err)} (in {model_path})"
            ) from err
    return module, card


class DeviceOutOfMemory(RuntimeError):
    """The device ran out of memory during a forward pass (whatever exception torch raised)."""


def is_out_of_memory(error: BaseException) -> bool:
    """Whether `error` is an out-of-memory error of the device.

    Eager PyTorch raises ``torch.cuda.OutOfMemoryError``, but a TorchScript module (every
    model this package runs) re-raises it as a plain ``RuntimeError`` (or ``torch.jit.Error``)
    whose message ends with the allocator's ``CUDA out of memory`` (pytorch/pytorch#148642),
    so the message decides too.

    Examples
    --------
    >>> is_out_of_memory(RuntimeError("The following operation failed in the TorchScript "
    ...                               "interpreter.\\nRuntimeError: CUDA out of memory. Tried to allocate 9 GiB"))
    True
    >>> is_out_of_memory(RuntimeError("Given groups=1, weight of size [16, 1, 3, 3], expected input[1, 2, 8, 8]"))
    False
    """
    import torch

    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    text = str(error)
    return "CUDA out of memory" in text or "CUDA error: out of memory" in text


def _last_line(error: BaseException) -> str:
    """The informative line of an error (TorchScript puts its cause last)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def prepare_model(
    module: Any, *, channels: int, tile_shape: tuple[int, int], device: Any, channels_last: bool = True
) -> Any:
    """Check the model on one blank tile, then freeze it (weights inlined, batch norm folded).

    With `channels_last` the weights are converted to NHWC strides before freezing, so the
    frozen constants match NHWC inputs.

    The check runs before freezing: a frozen TorchScript module fed the wrong channel
    count can crash the process (torch 2.13) instead of raising.

    Raises
    ------
    ValueError
        If the model fails on a (1, channels, H, W) input or does not return (1, 1, H, W).
    """
    import torch

    blank = torch.zeros((1, channels, *tile_shape), device=device)
    try:
        with torch.inference_mode():
            outputs = module(blank)
    except RuntimeError as err:
        raise ValueError(
            f"model must accept input of shape {tuple(blank.shape)} (as its card says), got the "
            f"error: {_last_line(err)}"
        ) from err
    expected = (1, 1, *tile_shape)
    if not isinstance(outputs, torch.Tensor) or tuple(outputs.shape) != expected:
        found = tuple(outputs.shape) if isinstance(outputs, torch.Tensor) else type(outputs).__name__
        raise ValueError(f"model output must have shape {expected} (N, 1, H, W), got {found}")
    if channels_last and isinstance(module, torch.jit.ScriptModule):
        module = module.to(memory_format=torch.channels_last)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        return _freeze(module)


def _freeze(module: Any) -> Any:
    """Freeze a scripted module (inlines weights, folds batch norm into convolutions)."""
    import torch

    if not isinstance(module, torch.jit.ScriptModule):
        return module
    try:
        return torch.jit.freeze(module.eval())
    except (RuntimeError, AttributeError) as err:
        log.debug("could not freeze the model (%s); running it as loaded", err)
        return module


def select_channels(card: dict[str, Any], image_channels: int, channel: int, *, path: str,
                    image: str | None = None) -> list[int]:
    """Image channels to feed the model, from the card's input channel count.

    A one-channel model gets `channel`; a k-channel model needs an image with exactly k.
    `path` (the card) and `image` name the files in messages: a channel outside the image
    names the image (the card's path when `image` is None).

    Raises
    ------
    ValueError
        If the image cannot supply the channels the card asks for.

    Examples
    --------
    >>> select_channels({"input": {"channels": 1}}, 3, 2, path="m.json")
    [2]
    """
    wanted = card["input"]["channels"]
    if wanted == 1:
        if isinstance(channel, bool) or not isinstance(channel, int) or not 0 <= channel < image_channels:
            raise ValueError(
                f"channel must be an integer in [0, {image_channels - 1}] (the image's channels), got "
                f"{channel!r} (in {image or path})"
            )
        return [channel]
    if wanted != image_channels:
        raise ValueError(
            f"input.channels must match the image's channel count {image_channels}, got "
            f"{wanted!r} (the model card disagrees with the data) (in {path})"
        )
    return list(range(wanted))


class TileModel:
    """Run batches of tiles through a model and return float16 foreground probabilities.

    Parameters
    ----------
    module : callable
        The model: (N, C, H, W) float tensor -> (N, 1, H, W) tensor.
    output_kind : {"logits", "probabilities"}
    device : torch.device
    precision : torch.dtype or None
        Autocast dtype; None runs in float32.
    batch_size : int
        Largest batch; halved on CUDA out-of-memory down to 1.
    channels_last : bool
        Feed NHWC-strided input (faster convolutions on CPU and tensor cores); prepare the
        module with the same setting (`prepare_model`).
    """

    def __init__(self, module: Any, *, output_kind: str, device: Any, precision: Any,
                 batch_size: int, channels_last: bool = True) -> None:
        self.module = module
        self.output_kind = output_kind
        self.device = device
        self.precision = precision
        self.batch_size = batch_size
        self.channels_last = channels_last

    def forward(self, batch: np.ndarray, precision: Any = "same") -> np.ndarray:
        """Probabilities of shape (N, H, W), float16, for a (N, C, H, W) float32 batch."""
        import torch

        precision = self.precision if precision == "same" else precision
        inputs = torch.from_numpy(batch)
        if self.device.type != "cpu":
            inputs = inputs.to(self.device)
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(
            self.device.type, dtype=precision or torch.float32, enabled=precision is not None
        ):
            try:
                outputs = self.module(inputs)
            except (RuntimeError, torch.jit.Error) as err:
                if is_out_of_memory(err):
                    raise DeviceOutOfMemory(_last_line(err)) from err
                raise ValueError(
                    f"model must accept input of shape {tuple(batch.shape)}, got the error: "
                    f"{_last_line(err)}"
                ) from err
        return self._to_probabilities(outputs, batch.shape)

    def _to_probabilities(self, outputs: Any, shape: tuple[int, ...]) -> np.ndarray:
        """Check the output shape, apply the sigmoid to logits, return float16 on the host."""
        import torch

        expected = (shape[0], 1, shape[2], shape[3])
        if not isinstance(outputs, torch.Tensor) or tuple(outputs.shape) != expected:
            found = tuple(outputs.shape) if isinstance(outputs, torch.Tensor) else type(outputs).__name__
            raise ValueError(f"model output must have shape {expected}, got {found}")
        values = outputs[:, 0].float()
        values = torch.sigmoid(values) if self.output_kind == "logits" else values.clamp(0.0, 1.0)
        return values.to(torch.float16).cpu().numpy()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Like `forward`, split into batches of at most `batch_size`, backing off on CUDA OOM."""
        import torch

        results = []
        start = 0
        while start < len(batch):
            stop = min(start + self.batch_size, len(batch))
            try:
                results.append(self.forward(batch[start:stop]))
            except DeviceOutOfMemory as err:
                if self.batch_size == 1:
                    raise RuntimeError("device memory must hold one tile, got out of memory at batch size 1") from err
                self.batch_size = max(1, self.batch_size // 2)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                log.warning("out of device memory; batch size lowered to %d", self.batch_size)
                continue
            start = stop
        return np.concatenate(results)

    def check_precision(self, batch: np.ndarray, *, tolerance: float = AUTO_PRECISION_TOLERANCE) -> float:
        """Compare reduced precision with float32 on `batch`; fall back to float32 beyond `tolerance`.

        Every tile of `batch` is compared (in batches of at most `batch_size`). Returns the
        largest absolute probability difference (0.0 when already float32).
        """
        if self.precision is None:
            return 0.0
        difference = 0.0
        for start in range(0, len(batch), self.batch_size):
            sample = batch[start:start + self.batch_size]
            reduced = self.forward(sample).astype(np.float32)
            difference = max(difference, float(np.abs(
                reduced - self.forward(sample, None).astype(np.float32)).max()))
        if difference > tolerance:
            log.warning("reduced precision changes probabilities by %.3g > %.3g; using float32",
                        difference, tolerance)
            self.precision = None
        else:
            log.info("reduced precision checked: max probability difference %.2g", difference)
        return difference
