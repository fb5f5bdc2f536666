"""``spheroseg segment``: probabilities of one position into tracked labels."""

from __future__ import annotations

import argparse
import math
from typing import Any

from spheroseg.cli.arguments import probability


def _non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}") from err
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return int(text)


def register(subparsers: Any) -> None:
    """Add the ``segment`` subcommand."""
    parser = subparsers.add_parser(
        "segment",
        help="threshold probabilities into labels tracked over time",
        description="Threshold each frame of probabilities.ome.zarr, fill holes, remove small "
        "objects, optionally split touching bodies or keep the largest, and link objects "
        "between frames by overlap so that an id names the same body at every timepoint. "
        "Writes labels.ome.zarr (t, y, x; int32; 0 = background), only when complete.",
    )
    parser.add_argument("--probabilities", required=True, help="probabilities.ome.zarr to read")
    parser.add_argument("--output", required=True, help="labels.ome.zarr to write")
    parser.add_argument("--method", choices=("fixed", "otsu"), default="fixed",
                        help="fixed threshold, or Otsu's threshold per frame (default: fixed)")
    parser.add_argument("--threshold", type=probability, default=0.5,
                        help="foreground is probability > threshold (default: 0.5)")
    area = parser.add_mutually_exclusive_group()
    area.add_argument("--min-area-um2", type=_non_negative_float, default=None,
                      help="remove objects smaller than this area in square micrometres "
                      "(needs a known pixel size)")
    area.add_argument("--min-area-px", type=_non_negative_float, default=None,
                      help="remove objects with fewer pixels (default: 50)")
    parser.add_argument("--no-fill-holes", action="store_true",
                        help="keep holes inside objects (default: fill them)")
    parser.add_argument("--split-touching", action="store_true",
                        help="split touching bodies at necks (distance-transform watershed)")
    parser.add_argument("--split-depth", type=probability, default=0.3,
                        help="with --split-touching: split where a neck is narrower than "
                        "(1 - depth) times the bodies' width (default: 0.3)")
    parser.add_argument("--keep-largest", action="store_true",
                        help="keep only the largest object of each frame")
    parser.add_argument("--max-gap", type=_non_negative_int, default=2,
                        help="frames a body may be missing (out of focus, empty frame) and "
                        "keep its id when it reappears (default: 2)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    """Segment and link all frames."""
    import logging

    from spheroseg.segmentation import SegmentationOptions, segment_store

    options = SegmentationOptions(
        method=args.method, threshold=args.threshold, fill_holes=not args.no_fill_holes,
        min_area_px=50.0 if args.min_area_px is None else args.min_area_px,
        split_touching=args.split_touching, split_depth=args.split_depth,
        keep_largest=args.keep_largest,
    )
    thresholds = segment_store(args.probabilities, args.output, options,
                               min_area_um2=args.min_area_um2, max_gap=args.max_gap)
    logging.getLogger(__name__).info("wrote %s (%d frames)", args.output, len(thresholds))
