"""Run every messy-folder case of issue 14 (and the first-run case of issue 13) through the
workflow and print a table of case, outcome and message, for reviewers.

    python benchmarks/messy_folders.py [--output benchmarks/messy_folders_results.md] [CASE ...]

Each case builds its folder in a fresh temporary directory (tests/realworld/messy_cases.py,
the same code the tests assert on). Outcome is ``works`` (the run finished with the right
positions and rows), ``refused`` (it stopped before any compute job, wrote nothing, and the
message is its one line), ``stopped at ingest`` (non-finite pixels, found while reading
them), or ``FAILED``; the next column is what the config key the message names then did.
Not a timing benchmark: seconds are for orientation.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def load_cases() -> ModuleType:
    """tests/realworld/messy_cases.py as a module (it runs the Snakefile through
    tests/snakefile_runner.py, hence tests/ on sys.path, as in pytest)."""
    sys.path.insert(0, str(REPO / "tests"))
    path = REPO / "tests" / "realworld" / "messy_cases.py"
    spec = importlib.util.spec_from_file_location("messy_cases", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["messy_cases"] = module
    spec.loader.exec_module(module)
    return module


def shorten(text: str, root: str) -> str:
    """One table cell: temporary folder replaced by ``DIR``, pipes escaped."""
    return " ".join(text.replace(root, "DIR").split()).replace("|", "\\|")


def main(argv: list[str] | None = None) -> int:
    """Run the cases, print the table, optionally write it as Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, help="also write the table to this Markdown file")
    parser.add_argument("cases", nargs="*", help="case function names (default: all)")
    args = parser.parse_args(argv)
    cases = load_cases()
    chosen = [case for case in cases.CASES if not args.cases or case.__name__ in args.cases]
    lines = ["| case | outcome | message | with the named fix | s |", "|---|---|---|---|---|"]
    failed = 0
    for case in chosen:
        with tempfile.TemporaryDirectory(prefix="messy-") as root:
            start = time.perf_counter()
            outcome = case(Path(root))
            seconds = time.perf_counter() - start
        failed += outcome.outcome == "FAILED"
        lines.append(f"| {outcome.case} | {outcome.outcome} | {shorten(outcome.message, root)} "
                     f"| {shorten(outcome.fix, root)} | {seconds:.0f} |")
        print(lines[-1], flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    footer = f"\n{len(chosen)} cases, {failed} failed; load average {load:.1f} at the end."
    print(footer)
    if args.output is not None:
        args.output.write_text("\n".join(lines) + "\n" + footer + "\n", encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
