"""``spheroseg stitch``: blend tile predictions into probabilities.ome.zarr."""

from __future__ import annotations

import argparse
from typing import Any

from spheroseg.cli.arguments import add_verb, given


def register(subparsers: Any) -> None:
    """Add the ``stitch`` subcommand."""
    parser = add_verb(
        subparsers, "stitch",
        help="blend tiles.zarr into probabilities.ome.zarr",
        description="Blend overlapping tile probabilities with a smooth window, one frame at a "
        "time, into an OME-Zarr (axes t, y, x) with the image's pixel size and frame interval.",
    )
    parser.add_argument("--plan", required=True, help="tiles.json from `spheroseg tile`")
    parser.add_argument("--tiles", required=True, help="tiles.zarr from `spheroseg predict`")
    parser.add_argument("--output", required=True, help="probabilities.ome.zarr to write")
    parser.add_argument("--window",
                        help="blending window: gaussian (sigma = tile/8, weighs tile centres "
                        "most), cosine (sin^2 ramp over the overlap) or flat")
    parser.add_argument("--dtype", help="stored probability type: float16 or float32")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    """Stitch the tiles."""
    from spheroseg.inference import stitch_tiles

    stitch_tiles(args.plan, args.tiles, args.output, **given(args, ("window", "dtype")))
