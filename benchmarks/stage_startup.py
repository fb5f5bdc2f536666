"""Fixed cost of the chain's stage processes: `spheroseg tile`, `predict` and `stitch` on a tiny position (issue 17).

On a 2-frame 256 x 256 position the work is negligible, so each process's wall time is its
fixed cost: starting Python, imports, reading the card and metadata, (predict) loading the
model and its precision check. Several source trees (``--source DIR``, each a checkout's
``src``) are compared side by side: the same three commands run with ``PYTHONPATH`` set to each
tree in turn, A-B-B-A within every round, so load drifts hit them alike. One `spheroseg demo`
position, ingested once, serves every run; each run writes its own outputs.

    nice -n 10 python benchmarks/stage_startup.py --source /tmp/old/src --source src [--rounds 5]
        [--output benchmarks/stage_startup_results.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "default.pt"
STAGES = ("tile", "predict", "stitch")


def spheroseg(source: Path, *args: str) -> float:
    """Run ``python -m spheroseg.cli ARGS`` with `source` first on the path; its wall seconds."""
    env = dict(os.environ, PYTHONPATH=str(source))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import sys; from spheroseg.cli import main; sys.exit(main())", *args],
                   env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def chain(source: Path, image: Path, work: Path) -> dict[str, float]:
    """Wall seconds of each stage of one tile -> predict -> stitch run into `work`."""
    plan, tiles = work / "plan.json", work / "tiles.zarr"
    return {"tile": spheroseg(source, "tile", "--image", str(image), "--model", str(MODEL), "--output", str(plan)),
            "predict": spheroseg(source, "predict", "--image", str(image), "--plan", str(plan), "--model",
                                 str(MODEL), "--output", str(tiles)),
            "stitch": spheroseg(source, "stitch", "--plan", str(plan), "--tiles", str(tiles), "--output",
                                str(work / "probabilities.ome.zarr"))}


def prepare(folder: Path, source: Path) -> Path:
    """A 2-frame 256 x 256 demo position, ingested: its image.ome.zarr."""
    spheroseg(source, "demo", "--output", str(folder / "raw"), "--position", "p0", "--timepoints", "2",
              "--size", "256", "256")
    spheroseg(source, "ingest", "--experiment", str(folder / "raw"), "--position", "p0", "--output",
              str(folder / "image.ome.zarr"))
    return folder / "image.ome.zarr"


def markdown(sources: list[Path], runs: dict[str, list[dict[str, float]]], meta: dict) -> str:
    """The results page: median seconds per stage and source, and the ratio to the first source."""
    lines = ["# Fixed cost of the chain's stage processes", "",
             "Written by `benchmarks/stage_startup.py` (do not edit by hand); see its docstring.", "",
             f"Run {meta['started']} on {meta['machine']}; command `{meta['command']}`; {meta['rounds']} rounds, "
             f"A-B-B-A order within each; load average before {meta['load_before']}, after {meta['load_after']}.",
             "", "| source | " + " | ".join(f"{s} s (median)" for s in STAGES) + " | chain s | chain / first source |",
             "|---|" + "---|" * (len(STAGES) + 2)]
    first = None
    for source in sources:
        medians = {s: statistics.median(run[s] for run in runs[str(source)]) for s in STAGES}
        total = sum(medians.values())
        first = total if first is None else first
        lines.append(f"| `{source}` | " + " | ".join(f"{medians[s]:.3f}" for s in STAGES)
                     + f" | {total:.3f} | {total / first:.3f} |")
    lines += ["", "Every run, seconds (tile, predict, stitch):", ""]
    for source in sources:
        lines.append(f"- `{source}`: " + "; ".join(", ".join(f"{run[s]:.2f}" for s in STAGES)
                                                   for run in runs[str(source)]))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", action="append", type=Path, required=True,
                        help="a source tree (a checkout's src); give two or more to compare")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "stage_startup_results.md")
    args = parser.parse_args()
    sources = [path.resolve() for path in args.source]
    meta = {"started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rounds": args.rounds,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "command": "python benchmarks/stage_startup.py " + " ".join(sys.argv[1:]),
            "load_before": tuple(round(x, 2) for x in os.getloadavg())}
    runs: dict[str, list[dict[str, float]]] = {str(source): [] for source in sources}
    with tempfile.TemporaryDirectory(prefix="stage-startup-") as scratch:
        image = prepare(Path(scratch), sources[-1])
        count = 0
        for round_ in range(args.rounds):
            order = sources + sources[::-1] if round_ % 2 == 0 else sources[::-1] + sources
            for source in order:
                count += 1
                work = Path(scratch) / f"run{count}"
                work.mkdir()
                runs[str(source)].append(chain(source, image, work))
            print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    meta["load_after"] = tuple(round(x, 2) for x in os.getloadavg())
    args.output.write_text(markdown(sources, runs, meta))
    print(args.output.read_text())


if __name__ == "__main__":
    main()
