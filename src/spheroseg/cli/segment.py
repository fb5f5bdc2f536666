"""``spheroseg segment``: probabilities of one position into tracked labels."""

from __future__ import annotations

import argparse
from typing import Any

from spheroseg.cli.arguments import add_verb, given


def register(subparsers: Any) -> None:
    """Add the ``segment`` subcommand."""
    parser = add_verb(
        subparsers, "segment",
        help="threshold probabilities into labels tracked over time",
        description="Threshold each frame of probabilities.ome.zarr, fill holes, remove small "
        "objects, optionally split touching bodies or keep the largest, and link objects "
        "between frames by overlap so that an id names the same body at every timepoint. "
        "Writes the label image (t, y, x; int32; 0 = background) nested under its image, "
        "IMAGE/labels/segmentation (NGFF image-labels: viewers open the image with its "
        "labels), only when complete, then the --record file if given. "
        "Defaults: spheroseg.segmentation.SegmentationOptions (docs/contracts.md).",
    )
    parser.add_argument("--probabilities", required=True, help="probabilities.ome.zarr to read")
    parser.add_argument("--image", required=True,
                        help="image.ome.zarr the probabilities came from; the labels go into "
                        "its labels/segmentation")
    parser.add_argument("--record",
                        help="JSON file written once the labels are complete (where they are, "
                        "options, per-frame thresholds)")
    parser.add_argument("--method", help="fixed threshold, or otsu: Otsu's threshold per frame")
    parser.add_argument("--threshold", type=float,
                        help="foreground is probability > threshold (method fixed)")
    area = parser.add_mutually_exclusive_group()
    area.add_argument("--min-area-um2", type=float,
                      help="remove objects smaller than this area in square micrometres "
                      "(needs a known pixel size)")
    area.add_argument("--min-area-px", type=float, help="remove objects with fewer pixels")
    parser.add_argument("--no-fill-holes", dest="fill_holes", action="store_false",
                        help="keep holes inside objects (default: fill them)")
    parser.add_argument("--split-touching", action="store_true",
                        help="split touching bodies at necks (distance-transform watershed)")
    parser.add_argument("--split-depth", type=float,
                        help="with --split-touching: split where a neck is narrower than "
                        "(1 - depth) times the bodies' width")
    parser.add_argument("--keep-largest", action="store_true",
                        help="keep only the largest object of each frame")
    parser.add_argument("--max-gap", type=int,
                        help="frames a body may be missing (out of focus, empty frame) and "
                        "keep its id when it reappears")
    parser.add_argument("--threads", type=int,
                        help="worker processes for large positions (default: the CPUs this "
                        "job may use; the workflow passes the rule's threads)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    """Segment and link all frames."""
    import dataclasses
    import logging

    from spheroseg.segmentation import SegmentationOptions, segment_into_image

    names = [field.name for field in dataclasses.fields(SegmentationOptions)]
    options = SegmentationOptions(**given(args, names))
    thresholds = segment_into_image(args.probabilities, args.image, options,
                                    record=getattr(args, "record", None),
                                    **given(args, ["threads"]))
    logging.getLogger(__name__).info("wrote %s/labels/segmentation (%d frames)", args.image,
                                     len(thresholds))
