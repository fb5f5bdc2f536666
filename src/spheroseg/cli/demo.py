"""``spheroseg demo``: write the synthetic demo experiment (or a synthetic training set)."""

from __future__ import annotations

import argparse
from pathlib import Path

from spheroseg.cli.arguments import add_verb, given

OPTIONS = ("n_timepoints", "shape", "seed", "pixel_size_um", "time_interval_s", "artefact")


def _position(text: str) -> tuple[str, int]:
    """Parse ``NAME=N_BODIES`` (or ``NAME`` for one body)."""
    name, _, count = text.partition("=")
    if not name:
        raise argparse.ArgumentTypeError(f"position must be NAME or NAME=N_BODIES, got {text!r}")
    try:
        return name, int(count or 1)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"number of bodies must be an integer, got {count!r}") from err


def _artefact(text: str) -> tuple[str, int]:
    """Parse ``POSITION:TIMEPOINT``."""
    from spheroseg.synthetic import parse_artefact

    try:
        return parse_artefact(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand."""
    parser = add_verb(
        subparsers, "demo", help="write the synthetic demo experiment with exact ground truth",
        description="Write synthetic gastruloid time-lapses (one OME-TIFF per position) with exact "
        "ground-truth masks and metrics in a ground_truth/ subfolder; or, with --training-set, "
        "annotated image/mask pairs for training.",
    )
    parser.add_argument("--output", type=Path, required=True, help="experiment (or training-set) folder")
    parser.add_argument("--position", type=_position, action="append", dest="positions",
                        help="NAME=N_BODIES, repeatable (default: spheroseg.synthetic.DEMO_POSITIONS)")
    parser.add_argument("--timepoints", dest="n_timepoints", type=int, help="frames per position")
    parser.add_argument("--size", dest="shape", type=int, nargs=2, metavar=("Y", "X"), help="frame shape")
    parser.add_argument("--seed", type=int, help="the demo is deterministic given the seed")
    parser.add_argument("--pixel-size-um", type=float, help="pixel size written into the metadata")
    parser.add_argument("--time-interval-s", type=float, help="frame interval written into the metadata")
    parser.add_argument("--artefact", type=_artefact, help="POSITION:TIMEPOINT that gets a sudden artefact")
    parser.add_argument("--training-set", type=int, metavar="N",
                        help="write N annotated frames (images/ + masks/) instead of an experiment")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    """Write the demo experiment or training set."""
    from spheroseg import synthetic

    if hasattr(args, "training_set"):
        options = given(args, ("shape", "seed"))
        synthetic.write_training_set(args.output, n_images=args.training_set,
                                     **{**options, **_shape(options)})
        return
    options = given(args, OPTIONS) | ({"positions": dict(args.positions)} if hasattr(args, "positions") else {})
    synthetic.write_demo_experiment(args.output, **{**options, **_shape(options)})


def _shape(options: dict) -> dict:
    """``--size Y X`` as the tuple the library wants (nothing when not given)."""
    return {"shape": tuple(options["shape"])} if "shape" in options else {}
