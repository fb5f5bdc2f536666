"""What the subcommands share: an option the user does not give stays absent from the parsed
arguments, so that the library's default applies (its option dataclasses and keyword
defaults, e.g. `spheroseg.segmentation.SegmentationOptions`). The command line restates no
default and checks no range: the library checks each value once and names it in its error.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any


def add_verb(subparsers: Any, name: str, **options: Any) -> argparse.ArgumentParser:
    """A subcommand parser whose options are absent from the namespace unless given."""
    return subparsers.add_parser(name, argument_default=argparse.SUPPRESS, **options)


def given(args: argparse.Namespace, names: Iterable[str]) -> dict[str, Any]:
    """The options among `names` that the user gave, as keyword arguments.

    Examples
    --------
    >>> given(argparse.Namespace(threshold=0.6), ["threshold", "method"])
    {'threshold': 0.6}
    """
    return {name: getattr(args, name) for name in names if hasattr(args, name)}
