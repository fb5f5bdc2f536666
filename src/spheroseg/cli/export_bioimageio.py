"""``spheroseg export-bioimageio``: a model with its card as a bioimage.io model package (zip)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from spheroseg.cli.arguments import add_verb, given


def register(subparsers: Any) -> None:
    """Add the ``export-bioimageio`` subcommand."""
    parser = add_verb(
        subparsers, "export-bioimageio",
        help="write a bioimage.io model package (zip) for a model with its card",
        description="Package a TorchScript model and its card for the BioImage Model Zoo, "
        "deepImageJ or ilastik (bioimage.io format 0.5): weights, test tensors computed with "
        "spheroseg's normalisation, cover image, README with the card's validation figures. "
        "Validated with bioimageio.spec and tested with bioimageio.core before it is written; "
        'needs the extra: pip install -e ".[bioimageio]".',
    )
    parser.add_argument("model", help="TorchScript model (its .json card beside it)")
    parser.add_argument("output", help="package to write (.zip)")
    parser.add_argument("--sample", help="TIFF or image.ome.zarr whose first frame becomes the "
                        "test input (default: a synthetic spheroid frame)")
    parser.add_argument("--license", dest="license_id",
                        help="SPDX licence of the weights (default: MIT, the project's)")
    parser.add_argument("--cite", nargs=2, action="append", metavar=("TEXT", "DOI"),
                        help="a citation with its DOI, e.g. of the training data (repeatable)")
    parser.add_argument("--no-test", dest="test", action="store_false",
                        help="skip bioimageio.core's test_model (the description is still validated)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    """Export the package and print its summary."""
    from spheroseg.modelzoo.export import export_bioimageio

    options = given(args, ("sample", "license_id", "test"))
    if hasattr(args, "cite"):
        options["cite"] = [tuple(pair) for pair in args.cite]
    print(json.dumps(export_bioimageio(args.model, args.output, **options)))
