"""argparse value types shared by the subcommands (each rejects a bad value with one line)."""

from __future__ import annotations

import argparse


def probability(text: str) -> float:
    """argparse type: a number strictly between 0 and 1.

    Examples
    --------
    >>> probability("0.5")
    0.5
    """
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1), got {text!r}") from err
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1), got {text!r}")
    return value
