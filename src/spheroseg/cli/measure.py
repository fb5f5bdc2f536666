"""``spheroseg measure``: contours and shape metrics of one position over time."""

from __future__ import annotations

import argparse
from typing import Any

from spheroseg.cli.arguments import add_verb, given

OPTIONS = ("channel", "threshold", "smoothing", "threads")


def _smoothing(text: str) -> str | float | None:
    """argparse type: 'auto', 'none' or a Gaussian sigma in pixels (its range checked later)."""
    if text in ("auto", "none"):
        return None if text == "none" else text
    try:
        return float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"must be 'auto', 'none' or a sigma in pixels, got {text!r}") from err


def register(subparsers: Any) -> None:
    """Add the ``measure`` subcommand."""
    parser = add_verb(
        subparsers, "measure",
        help="sub-pixel contours and shape metrics per object per timepoint",
        description="Trace each labelled object's boundary with sub-pixel accuracy on the "
        "probability map and measure area, perimeter, circularity, solidity, axes, Feret "
        "diameters, centroid and mean intensity in micrometres and seconds (docs/metrics.md). "
        "Writes OUTPUT_DIR/contours.geojson, OUTPUT_DIR/metrics/t<NNNN>.csv and "
        "OUTPUT_DIR/metrics.csv, each only when complete.",
    )
    parser.add_argument("--labels", required=True,
                        help="label image from segment (IMAGE/labels/segmentation)")
    parser.add_argument("--probabilities", required=True, help="probabilities.ome.zarr")
    parser.add_argument("--image", required=True, help="image.ome.zarr (for mean intensity)")
    parser.add_argument("--experiment", required=True, help="experiment name for the CSV")
    parser.add_argument("--position", required=True, help="position name for the CSV")
    parser.add_argument("--output-dir", required=True, help="the position's results folder")
    parser.add_argument("--channel", type=int, help="image channel for mean intensity")
    parser.add_argument("--threshold", type=float,
                        help="contour level (default: the threshold segment used)")
    parser.add_argument("--smoothing", type=_smoothing,
                        help="Gaussian sigma (pixels) applied to masks before tracing: 'auto' "
                        "(only for binary 0/1 probability maps), 'none' or a number")
    parser.add_argument("--threads", type=int,
                        help="worker processes for large positions (default: the CPUs this "
                        "job may use; the workflow passes the rule's threads)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    """Measure all frames and write the outputs."""
    import logging

    from spheroseg.measure.store import measure_store

    rows = measure_store(args.labels, args.probabilities, args.image, args.output_dir,
                         experiment=args.experiment, position=args.position,
                         **given(args, OPTIONS))
    logging.getLogger(__name__).info("wrote %s (%d rows)", args.output_dir, rows)
