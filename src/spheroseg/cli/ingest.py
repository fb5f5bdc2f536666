"""``spheroseg ingest``: one position of an experiment folder into an OME-Zarr image."""

from __future__ import annotations

import argparse
from typing import Any

from spheroseg.cli.arguments import add_verb, given

SIZES = ("pixel_size_um", "time_interval_s", "z_step_um")


def register(subparsers: Any) -> None:
    """Add the ``ingest`` subcommand."""
    parser = add_verb(
        subparsers, "ingest",
        help="convert one position's TIFF file(s) into image.ome.zarr",
        description="Convert the raw TIFF/OME-TIFF/ImageJ file(s) of one position into an "
        "OME-Zarr (NGFF 0.5) image with axes t, c, (z,) y, x, keeping raw values and the "
        "physical pixel size and frame interval. The output appears only when complete.",
    )
    parser.add_argument("--experiment", required=True, help="experiment folder")
    parser.add_argument("--position", required=True,
                        help="position name; <file>_<series> for a series of a multi-series "
                        "file (see docs/ingest.md)")
    parser.add_argument("--output", required=True, help="image.ome.zarr to write")
    parser.add_argument(
        "--pattern",
        help='file-name pattern with {position} and optional {timepoint}, e.g. '
        '"{position}_t{timepoint}.tif"; default: each TIFF in the folder is one position',
    )
    parser.add_argument("--pixel-size-um", type=float,
                        help="pixel size in micrometres (overrides the file metadata)")
    parser.add_argument("--time-interval-s", type=float,
                        help="time between frames in seconds (overrides the file metadata)")
    parser.add_argument("--z-step-um", type=float,
                        help="z spacing in micrometres (overrides the file metadata)")
    parser.add_argument("--axes",
                        help="NGFF letters for the file's axes when the reader's guess is "
                        "wrong or ambiguous, e.g. 'tyx' for a (T, Y, X) stack stored as one "
                        "page of T samples (config: ingest.axes)")
    parser.add_argument("--fill-nonfinite", type=float,
                        help="replace NaN and infinite pixels by this value (default: refuse "
                        "them; config: ingest.fill_nonfinite)")
    parser.add_argument("--no-pyramid", dest="pyramid", action="store_false",
                        help="do not write downsampled levels for viewing")
    parser.add_argument("--workers", type=int, help="threads compressing frames in parallel")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    """Find the position's files (and series) and ingest them."""
    import logging

    from spheroseg.ingest import PhysicalSizes, check_axes_override, check_overrides, ingest_position
    from spheroseg.preflight import resolve_position

    if not getattr(args, "verbose", False):
        # tifffile logs every oddity of a corrupt file; our own error says what matters.
        logging.getLogger("tifffile").setLevel(logging.ERROR)

    overrides = PhysicalSizes(**given(args, SIZES))
    check_overrides(overrides)  # before looking at any file
    axes = getattr(args, "axes", None)
    if axes is not None:
        check_axes_override(axes)
    plan = resolve_position(args.experiment, args.position, axes=axes, **given(args, ["pattern"]))
    ingest_position(plan.files, args.output, name=args.position, overrides=overrides,
                    series=plan.series, **given(args, ["pyramid", "workers", "axes",
                                                       "fill_nonfinite"]))
