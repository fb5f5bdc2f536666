"""The ``spheroseg`` command: one subcommand per pipeline stage.

Each subcommand lives in its own module ``spheroseg.cli.<name>`` with a
``register(subparsers)`` function that adds its parser and sets ``func``. Heavy imports
(torch, zarr) happen inside ``func`` so that ``spheroseg --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from spheroseg import __version__
from spheroseg.atomic import exit_on_signal

SUBCOMMANDS = (
    "demo", "ingest", "tile", "predict", "stitch", "segment", "measure", "aggregate", "train",
    "report", "propose", "export_bioimageio", "import_bioimageio",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(prog="spheroseg", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"spheroseg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"spheroseg.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"spheroseg.cli.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def describe_os_error(err: OSError) -> str:
    """The message of an error the operating system raised about a path, saying what is in the
    way (``[Errno 17] File exists: 'x'`` does not say that x had to be a folder); other
    errors' own message.

    Examples
    --------
    >>> describe_os_error(PermissionError(13, "Permission denied", "/results/a.csv"))
    '/results/a.csv must be accessible, got permission denied'
    """
    if err.errno is None or err.filename is None:
        return str(err)
    path = Path(os.fsdecode(err.filename))
    if isinstance(err, FileExistsError) and path.is_file():
        return f"{path} must be a folder, got a file of that name in the way"
    if isinstance(err, NotADirectoryError):
        blocker = next((part for part in (path, *path.parents) if part.is_file()), None)
        if blocker is not None:
            return f"{path} must lie in a folder, got a file in the way ({blocker})"
    if isinstance(err, IsADirectoryError):
        return f"{path} must be a file, got a folder"
    if isinstance(err, PermissionError):
        return f"{path} must be accessible, got permission denied"
    return f"{err.strerror}: {path}" if err.strerror else str(err)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 error, 2 usage, 128+N on signal N)."""
    signal.signal(signal.SIGTERM, exit_on_signal)  # SystemExit, so atomic writes clean up
    # Thread settings take effect only before numpy and torch are imported, which the
    # subcommands do lazily; a value already in the environment wins.
    # numpy's OpenBLAS starts one spinning thread per core; no stage multiplies large matrices
    # with numpy, and those threads would take cycles from the stage's own workers (and torch).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # torch's OpenMP threads wait for each other at every layer; spinning there, they burn
    # the time slices a shared or busy node would give the other thread: a 2-thread CPU
    # forward pass took 3.3x longer than with passive waiting at load 6 on 2 cores
    # (benchmarks/inference_results.md), and passive waiting costs little when idle.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format=f"spheroseg {args.command}: %(message)s",
    )
    try:
        args.func(args)
    except (ValueError, TypeError, OSError, KeyError, RuntimeError) as err:
        message = describe_os_error(err) if isinstance(err, OSError) else str(err)
        message = message.splitlines()[0] if message else type(err).__name__
        print(f"spheroseg {args.command}: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
