"""``spheroseg predict``: run a TorchScript model over the tiles of one position."""

from __future__ import annotations

import argparse
from typing import Any

from spheroseg.cli.arguments import add_verb, given

OPTIONS = ("channel", "device", "precision", "batch_size", "channels_last")


def register(subparsers: Any) -> None:
    """Add the ``predict`` subcommand."""
    parser = add_verb(
        subparsers, "predict",
        help="run the model over every tile (the GPU step), writing tiles.zarr",
        description="Read frames, normalise them as the model card says, run batches of tiles "
        "through the TorchScript model and store foreground probabilities per tile. Reading "
        "and writing run in background threads. The output appears only when complete.",
    )
    parser.add_argument("--image", required=True, help="image.ome.zarr")
    parser.add_argument("--plan", required=True, help="tiles.json from `spheroseg tile`")
    parser.add_argument("--model", required=True, help="TorchScript model (its .json card beside it)")
    parser.add_argument("--output", required=True, help="tiles.zarr to write")
    parser.add_argument("--channel", type=int, help="image channel for a one-channel model")
    parser.add_argument("--device", help="auto (CUDA if present), cuda, cuda:N or cpu")
    parser.add_argument("--precision",
                        help="auto, bf16, fp16 or fp32; auto: bf16/fp16 autocast where supported, "
                        "checked against fp32 on the first batch")
    parser.add_argument("--batch-size", type=int,
                        help="tiles per batch (default by device; halved on CUDA out-of-memory)")
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                        help="keep NCHW memory layout (for models that misbehave with NHWC)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    """Predict the tiles."""
    from spheroseg.inference import predict_tiles

    predict_tiles(args.image, args.plan, args.model, args.output, **given(args, OPTIONS))
