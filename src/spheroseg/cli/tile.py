"""``spheroseg tile``: the tile plan of one position for one model."""

from __future__ import annotations

import argparse
from typing import Any

from spheroseg.cli.arguments import add_verb, given


def register(subparsers: Any) -> None:
    """Add the ``tile`` subcommand."""
    parser = add_verb(
        subparsers, "tile",
        help="plan overlapping tiles of an image for a model (tiles.json)",
        description="Write the tile plan of one position: tile windows with a halo, reflection "
        "padding at the image borders, sides that the model's spatial divisor accepts.",
    )
    parser.add_argument("--image", required=True, help="image.ome.zarr")
    parser.add_argument("--model", required=True, help="TorchScript model (its .json card beside it)")
    parser.add_argument("--tile-size", type=int,
                        help="tile side in pixels, rounded up to the model's divisor "
                        "(default: the model card's suggestion)")
    parser.add_argument("--overlap", type=float,
                        help="overlap of neighbouring tiles as a fraction of the tile "
                        "(default: twice the model card's halo)")
    parser.add_argument("--rescale",
                        help="auto: plan for the frames resampled to the model card's pixel size "
                        "when the image's differs (by more than 5%%); off: the image as it is")
    parser.add_argument("--output", required=True, help="tiles.json to write")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    """Plan the tiles and write the plan atomically."""
    import logging

    from spheroseg.inference import plan_for_image
    from spheroseg.tiling import write_plan

    plan = plan_for_image(args.image, args.model, **given(args, ("tile_size", "overlap", "rescale")))
    write_plan(plan, args.output, image=str(args.image), model=str(args.model))
    logging.getLogger(__name__).info(
        "%d tiles of %dx%d per frame (halo %d px) on a %dx%d grid, %.2fx its pixels",
        len(plan.origins), *plan.tile_shape, plan.halo, *plan.image_shape, plan.computed_fraction,
    )
