"""``spheroseg propose``: choose the frames a person should annotate next and write them as
image + proposed-mask pairs into the annotation folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from spheroseg.cli.arguments import add_verb, given


def register(subparsers: Any) -> None:
    """Add the ``propose`` subcommand."""
    parser = add_verb(
        subparsers, "propose",
        help="rank frames by how much the model needs help; write the top N as annotation pairs",
        description="Score every frame of the given positions' results (uncertain-pixel share of the "
        "probabilities, disagreement with neighbouring frames' masks, QC flags), cover every condition "
        "and position first, and write the N neediest frames as images/NAME.tif + masks/NAME.tif (the "
        "layout training.annotations reads; the pixel size is kept in the TIFF). An existing mask is "
        "never overwritten: that frame is skipped and the next one taken. Adds the proposals to "
        "ANNOTATIONS/proposals.json and writes this run's proposals to --output.",
    )
    parser.add_argument("positions", nargs="+", type=Path, metavar="POSITION_DIR",
                        help="result folder of a position (image, probabilities and labels .ome.zarr, qc.csv)")
    parser.add_argument("--annotations", type=Path, required=True, help="annotation folder to write into")
    parser.add_argument("--output", type=Path, required=True, help="JSON file listing this run's proposals")
    parser.add_argument("--n", type=int, help="frames to propose")
    parser.add_argument("--channel", type=int, nargs="+", metavar="CHANNEL",
                        help="image channel written: one for every position, or one per POSITION_DIR")
    parser.add_argument("--samples", type=Path, help="sample sheet (TSV): conditions to cover")
    parser.add_argument("--model", help="the model whose predictions are proposed (recorded)")
    parser.set_defaults(func=run)


def _conditions(args: argparse.Namespace) -> dict[str, str]:
    """Position -> condition from the sample sheet, if one is given."""
    if not hasattr(args, "samples"):
        return {}
    from spheroseg.report.samples import read_samples

    table = read_samples(args.samples)
    return dict(zip(table["position"], table["condition"], strict=True))


def _normalization(args: argparse.Namespace) -> dict[str, Any] | None:
    """The --model card's normalisation (recorded with each pair's series window), if it has a card."""
    if not hasattr(args, "model"):
        return None
    from spheroseg.modelcard import card_path_for, read_card

    card = card_path_for(args.model)
    return read_card(card)["input"]["normalization"] if card.is_file() else None


def run(args: argparse.Namespace) -> None:
    """Propose frames and write the pairs, the record and the run's list."""
    from spheroseg.atomic import write_text
    from spheroseg.propose import propose_frames

    options = given(args, ("n", "channel", "model"))
    if len(options.get("channel", ())) == 1:
        options["channel"] = options["channel"][0]
    proposal = propose_frames(args.positions, args.annotations, conditions=_conditions(args),
                              normalization=_normalization(args), **options)
    for line in proposal.summary(args.annotations):
        print(f"spheroseg propose: {line}", file=sys.stderr)
    write_text(args.output, json.dumps({"annotations": str(args.annotations), "written": proposal.written,
                                        "skipped": proposal.skipped}, indent=2) + "\n")
