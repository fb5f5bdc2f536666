"""``spheroseg ingest``: one position of an experiment folder into an OME-Zarr image."""

from __future__ import annotations

import argparse
import math
from typing import Any


def _positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from err
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def _finite_float(text: str) -> float:
    """argparse type: a finite number."""
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}") from err
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def register(subparsers: Any) -> None:
    """Add the ``ingest`` subcommand."""
    parser = subparsers.add_parser(
        "ingest",
        help="convert one position's TIFF file(s) into image.ome.zarr",
        description="Convert the raw TIFF/OME-TIFF/ImageJ file(s) of one position into an "
        "OME-Zarr (NGFF 0.5) image with axes t, c, (z,) y, x, keeping raw values and the "
        "physical pixel size and frame interval. The output appears only when complete.",
    )
    parser.add_argument("--experiment", required=True, help="experiment folder")
    parser.add_argument("--position", required=True, help="position name (see docs/ingest.md)")
    parser.add_argument("--output", required=True, help="image.ome.zarr to write")
    parser.add_argument(
        "--pattern", default=None,
        help='file-name pattern with {position} and optional {timepoint}, e.g. '
        '"{position}_t{timepoint}.tif"; default: each TIFF in the folder is one position',
    )
    parser.add_argument("--pixel-size-um", type=_positive_float, default=None,
                        help="pixel size in micrometres (overrides the file metadata)")
    parser.add_argument("--time-interval-s", type=_positive_float, default=None,
                        help="time between frames in seconds (overrides the file metadata)")
    parser.add_argument("--z-step-um", type=_positive_float, default=None,
                        help="z spacing in micrometres (overrides the file metadata)")
    parser.add_argument("--axes", default=None,
                        help="NGFF letters for the file's axes when the reader's guess is "
                        "wrong or ambiguous, e.g. 'tyx' for a (T, Y, X) stack stored as one "
                        "page of T samples (config: ingest.axes)")
    parser.add_argument("--fill-nonfinite", type=_finite_float, default=None,
                        help="replace NaN and infinite pixels by this value (default: refuse "
                        "them; config: ingest.fill_nonfinite)")
    parser.add_argument("--no-pyramid", action="store_true",
                        help="do not write downsampled levels for viewing")
    parser.add_argument("--workers", type=int, default=2,
                        help="threads compressing frames in parallel")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    """Discover the position's files and ingest them."""
    import logging

    from spheroseg.ingest import PhysicalSizes, check_axes_override, ingest_position
    from spheroseg.preflight import resolve_position

    if not getattr(args, "verbose", False):
        # tifffile logs every oddity of a corrupt file; our own error says what matters.
        logging.getLogger("tifffile").setLevel(logging.ERROR)
    if args.axes is not None:
        check_axes_override(args.axes)
    plan = resolve_position(args.experiment, args.position, pattern=args.pattern,
                            axes=args.axes)
    overrides = PhysicalSizes(args.pixel_size_um, args.time_interval_s, args.z_step_um)
    ingest_position(
        plan.files, args.output, overrides=overrides, name=args.position,
        pyramid=not args.no_pyramid, workers=args.workers, series=plan.series,
        axes=args.axes, fill_nonfinite=args.fill_nonfinite,
    )
