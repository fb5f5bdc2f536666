"""How long the workflow takes to build its DAG (``snakemake -n``) on a large folder, now that
it reads every file's header before any job: first run (headers read), second run (cached),
and, for comparison, a Snakefile that only lists the folder (``--baseline-snakefile``, e.g.
the main branch's).

    python benchmarks/preflight_speed.py --files 300 --pages 200 \\
        [--baseline-snakefile /work/main/Snakefile] [--output benchmarks/preflight_speed_results.md]
    python benchmarks/preflight_speed.py --per-timepoint --positions 20 --pages 200 ...

With ``--per-timepoint`` the folder holds one single-page TIFF per position and timepoint
(``P0000_t000.tif`` ...; ``ingest.pattern: '{position}_t{timepoint}.tif'``), ``--positions``
x ``--pages`` files in all, each of whose headers the first run reads.

Each dry run starts a fresh snakemake process in a fresh working directory (so each
"first" run has no cache); runs alternate between the variants, and the median is reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

REPO = Path(__file__).resolve().parents[1]


def write_folder(folder: Path, *, files: int, pages: int, size: int = 32) -> None:
    """`files` plain multi-page TIFFs of `pages` frames each (a large, uncalibrated folder)."""
    folder.mkdir(parents=True)
    stack = np.random.default_rng(0).integers(0, 4000, (pages, size, size)).astype("uint16")
    for index in range(files):
        tifffile.imwrite(folder / f"well_{index:04d}.tif", stack, photometric="minisblack")


def write_timepoint_folder(folder: Path, *, positions: int, timepoints: int,
                           size: int = 32) -> None:
    """One single-page TIFF per position and timepoint (`positions` x `timepoints` files)."""
    folder.mkdir(parents=True)
    frame = np.random.default_rng(0).integers(0, 4000, (size, size)).astype("uint16")
    for position in range(positions):
        for timepoint in range(timepoints):
            tifffile.imwrite(folder / f"P{position:04d}_t{timepoint:03d}.tif", frame,
                             photometric="minisblack")


def dry_run(snakefile: Path, workdir: Path, folder: Path, per_timepoint: bool = False) -> float:
    """Seconds of one ``snakemake -n`` (quiet) on `folder`; raises if it fails."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    if (snakefile.parent / "src" / "spheroseg").is_dir():
        # a baseline checkout runs with its own package, not the installed one
        env["PYTHONPATH"] = str(snakefile.parent / "src")
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory",
               str(workdir), "-n", "--quiet", "all", "--cores", "1", "--config",
               f"experiment={folder}"]
    if per_timepoint:
        command.append("ingest={pattern: '{position}_t{timepoint}.tif'}")
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{snakefile}: {result.stderr[-2000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    """Time the variants and print (and optionally write) a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-timepoint", action="store_true",
                        help="one file per position and timepoint (ingest.pattern)")
    parser.add_argument("--positions", type=int, default=20,
                        help="positions of the --per-timepoint folder")
    parser.add_argument("--baseline-snakefile", type=Path)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {"headers read (first run)": [], "cached (second run)": []}
    if args.baseline_snakefile is not None:
        times["baseline: folder listing only"] = []
    with tempfile.TemporaryDirectory(prefix="preflight-speed-") as root:
        folder = Path(root) / "experiment"
        if args.per_timepoint:
            write_timepoint_folder(folder, positions=args.positions, timepoints=args.pages)
            what = (f"{args.positions} positions x {args.pages} per-timepoint TIFFs "
                    f"({args.positions * args.pages} files, `ingest.pattern`)")
        else:
            write_folder(folder, files=args.files, pages=args.pages)
            what = f"{args.files} TIFFs x {args.pages} pages"
        pattern = args.per_timepoint
        for round_ in range(args.rounds):
            work = Path(root) / f"work{round_}"
            times["headers read (first run)"].append(
                dry_run(REPO / "Snakefile", work, folder, pattern))
            times["cached (second run)"].append(
                dry_run(REPO / "Snakefile", work, folder, pattern))
            if args.baseline_snakefile is not None:
                times["baseline: folder listing only"].append(
                    dry_run(args.baseline_snakefile, Path(root) / f"base{round_}", folder,
                            pattern))
    load = os.getloadavg()[0]
    lines = [f"`snakemake -n` on {what} ({args.rounds} rounds, "
             f"median; load average {load:.1f} at the end)", "",
             "| variant | seconds (median) | all rounds |", "|---|---|---|"]
    for name, values in times.items():
        lines.append(f"| {name} | {statistics.median(values):.2f} | "
                     f"{', '.join(f'{v:.2f}' for v in values)} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
