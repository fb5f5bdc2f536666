"""Peak memory of every rule of the workflow on one large position (default 100 x 2048 x 2048).

Writes one experiment folder holding one position: a uint16 TIFF stack of realistic frames
(`realistic.py`, 2 um pixels as the default model's card, so that no resampling happens)
as an OME-TIFF,
then runs the real Snakefile on it (``snakemake --cores 2``, config defaults apart from the
experiment folder and ``ingest.pixel_size_um``). Every ``spheroseg`` command a rule runs goes
through a wrapper placed first on PATH, which runs the real command under
``procstats.run_measured``: the peak resident memory of the command's whole process tree
(the command and any worker process it starts), sampled every 0.1 s from /proc, and its
own ``ru_maxrss``. Snakemake's own benchmark files sample every 30 s after the first 30 s
and would miss short peaks. Results go to ``benchmarks/rule_memory_results.md``; the work
folder ``benchmarks/_work/rule_memory`` is deleted at the end.

Run from the repository root::

    python benchmarks/rule_memory_benchmark.py [--frames 100] [--size 2048]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
WORK = ROOT / "_work" / "rule_memory"
PIXEL_SIZE_UM = 2.0  # models/default.json's input.pixel_size_um: no resampling

sys.path.insert(0, str(ROOT))
from procstats import run_measured  # noqa: E402

WRAPPER = """#!{python}
import json, os, sys, time
sys.path.insert(0, {benchmarks!r})
from procstats import run_measured
argv = sys.argv[1:]
record = {{"argv": argv, "load": os.getloadavg()[0]}}
try:
    record |= run_measured([{spheroseg!r}, *argv], log=None)
    status = 0
except RuntimeError:
    status = 1
record["status"] = status
with open({records!r}, "a") as sink:
    sink.write(json.dumps(record) + "\\n")
sys.exit(status)
"""


def make_experiment(folder: Path, frames: int, size: int) -> None:
    """One position, ``p0.ome.tif``: `frames` realistic uint16 frames streamed into one
    OME-TIFF with its pixel size and frame interval."""
    import numpy as np
    import tifffile
    from realistic import realistic_frames

    folder.mkdir(parents=True)
    metadata = {"axes": "TYX", "PhysicalSizeX": PIXEL_SIZE_UM, "PhysicalSizeXUnit": "µm",
                "PhysicalSizeY": PIXEL_SIZE_UM, "PhysicalSizeYUnit": "µm",
                "TimeIncrement": 600.0, "TimeIncrementUnit": "s"}
    with tifffile.TiffWriter(folder / "p0.ome.tif", bigtiff=True, ome=True) as tif:
        tif.write(realistic_frames(frames, size), shape=(frames, size, size), dtype=np.uint16,
                  photometric="minisblack", metadata=metadata)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--output", type=Path, default=ROOT / "rule_memory_results.md")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / "bin").mkdir(parents=True)
    records = WORK / "records.jsonl"
    spheroseg = shutil.which("spheroseg", path=str(Path(sys.executable).parent))
    if spheroseg is None:
        raise SystemExit("the spheroseg command must be installed next to this Python")
    wrapper = WORK / "bin" / "spheroseg"
    wrapper.write_text(WRAPPER.format(python=sys.executable, benchmarks=str(ROOT),
                                      spheroseg=spheroseg, records=str(records)))
    wrapper.chmod(0o755)
    try:
        start = time.perf_counter()
        experiment = WORK / "experiment"
        make_experiment(experiment, args.frames, args.size)
        made = time.perf_counter() - start
        env = dict(os.environ, PATH=f"{wrapper.parent}{os.pathsep}{Path(sys.executable).parent}"
                                    f"{os.pathsep}{os.environ.get('PATH', '')}")
        load = os.getloadavg()
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                        "--directory", str(WORK), "--cores", "2", "--config",
                        f"experiment={experiment}", "results=results",
                        f"ingest={{pixel_size_um: {PIXEL_SIZE_UM}}}"],
                       env=env, check=True, cwd=WORK)
        seconds = time.perf_counter() - start
        rows = [json.loads(line) for line in records.read_text().splitlines()]
        report(args, rows, {"make_s": made, "workflow_s": seconds, "load_start": load,
                            "load_end": os.getloadavg()})
    finally:
        if not args.keep:
            shutil.rmtree(WORK, ignore_errors=True)


def _verb(argv: list[str]) -> str:
    """`predict`, or `report qc` for the report's subcommands."""
    return " ".join(argv[:2]) if argv and argv[0] == "report" else (argv[0] if argv else "?")


def report(args: argparse.Namespace, rows: list[dict], run: dict) -> None:
    """Write the markdown results file."""
    largest = max(rows, key=lambda row: row.get("tree_rss", 0))
    lines = [
        "# Peak memory of every rule", "",
        f"Written by `benchmarks/rule_memory_benchmark.py` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPU cores "
        f"({platform.machine()}), no GPU (CPU torch build), Python {platform.python_version()}, "
        f"on a machine shared with other work. One position of {args.frames} realistic frames of "
        f"{args.size} x {args.size} uint16 (`realistic.py`, {PIXEL_SIZE_UM} um pixels: the model "
        f"card's, no resampling), the workflow at its config defaults, `snakemake --cores 2`. "
        f"Workflow {run['workflow_s']:.0f} s; load average (1, 5, 15 min) "
        f"{', '.join(f'{x:.1f}' for x in run['load_start'])} at its start and "
        f"{', '.join(f'{x:.1f}' for x in run['load_end'])} at its end.", "",
        "| rule command | peak memory of the process tree (MB) | own peak RSS (MB) | seconds | load at start |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        if row["status"] != 0:
            lines.append(f"| {_verb(row['argv'])} | failed | | | {row['load']:.1f} |")
            continue
        lines.append(f"| {_verb(row['argv'])} | {row['tree_rss'] / 1e6:.0f} | {row['rss'] / 1e6:.0f} | "
                     f"{row['seconds']:.1f} | {row['load']:.1f} |")
    lines += ["", f"Largest: **{largest['tree_rss'] / 1e6:.0f} MB** (`spheroseg {_verb(largest['argv'])}`). "
              "Peak memory of the process tree: the largest sum of the resident memory of the command "
              "and its worker processes, sampled every 0.1 s from /proc; own peak RSS: `ru_maxrss` "
              "from `wait4` (the largest single process).", ""]
    args.output.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
