"""``spheroseg import-bioimageio``: a bioimage.io model package as a TorchScript model + card."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from spheroseg.cli.arguments import add_verb


def register(subparsers: Any) -> None:
    """Add the ``import-bioimageio`` subcommand."""
    parser = add_verb(
        subparsers, "import-bioimageio",
        help="turn a bioimage.io model package into a TorchScript model with its card",
        description="Read a bioimage.io package (.zip, or rdf.yaml with its files) of a 2-D model "
        "with one input, one output and TorchScript weights into spheroseg's model contract, "
        "check that spheroseg reproduces the package's test output, and write the weights "
        "(unchanged) with a model card beside them. Refuses, with the reason, what spheroseg "
        "cannot run safely or exactly (pickled state dicts, unsupported processing, 3-D, ...). "
        'Needs the extra: pip install -e ".[bioimageio]".',
    )
    parser.add_argument("package", help="bioimage.io package: .zip, rdf.yaml or *.bioimageio.yaml")
    parser.add_argument("output", nargs="?",
                        help="TorchScript file to write (.pt; its .json card goes beside it); "
                        "left out: only check the package")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    """Import (or only check) the package and print the card."""
    from spheroseg.modelzoo.importer import check_package, import_bioimageio

    if getattr(args, "output", None) is None:
        card = check_package(args.package)
        logging.getLogger(__name__).info("package can be run by spheroseg (nothing written)")
    else:
        card = import_bioimageio(args.package, args.output)
    print(json.dumps(card, indent=2, sort_keys=True))
