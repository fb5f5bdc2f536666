"""Compare ``spheroseg ingest`` of two source trees (before / after a change) with ``cp``, in one run.

Each round runs, on the same TIFF and disk: ``cp``, before, after, after, before, ``cp``
(A-B-B-A for the two versions, so that a drift of the machine's load charges both alike),
with ``sync`` before each timed run; the load average is recorded at each run's start. The
ratio of a version is the mean ``cp`` time over its mean ingest time (1.0 = as fast as
``cp``); peak RSS is the child's ``ru_maxrss``, CPU s its user + system time. Both versions run with this interpreter and
its site-packages, importing ``spheroseg`` from ``--before`` / ``--after`` (a ``src`` folder,
e.g. ``git archive main src | tar -x -C /tmp/before``).

The TIFF is ``--stack`` (for example 200 realistic 2048 x 2048 frames), or else made by
``ingest_benchmark.write_stack``. Results go to ``--output`` (markdown).

Run from the repository root:
``python benchmarks/ingest_compare.py --before /tmp/before/src --after src --stack stack.tif``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from ingest_benchmark import CLI, run_timed  # noqa: E402


def contender(label: str, stack: Path, work: Path, src: Path | None):
    """A function that runs one timed ingest (``src`` set) or ``cp`` (``src`` None).

    Each ingest writes a new output, kept until the end of the run: right after many
    deletions ext4 allocates inodes slowly, which would charge a run for its predecessor's
    cleanup (and favour the version that writes fewer files).
    """
    runs = itertools.count()

    def ingest() -> dict:
        out = work / f"out{label}{next(runs)}" / "image.ome.zarr"
        env = dict(os.environ, PYTHONPATH=f"{src.resolve()}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
        load = os.getloadavg()[0]
        seconds, rss, cpu = run_timed([sys.executable, "-c", CLI, "ingest", "--experiment",
                                       str(stack.parent), "--position", stack.stem, "--output",
                                       str(out), "--time-interval-s", "300"], env=env)
        stored = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
        return {"run": label, "seconds": seconds, "rss": rss, "load": load, "cpu": cpu,
                "stored": stored}

    def copy() -> dict:
        load = os.getloadavg()[0]
        seconds, rss, cpu = run_timed(["cp", str(stack), str(work / "copy.tif")])
        (work / "copy.tif").unlink()
        return {"run": label, "seconds": seconds, "rss": rss, "load": load, "cpu": cpu}

    return copy if src is None else ingest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="src folder of the old version")
    parser.add_argument("--after", type=Path, required=True, help="src folder of the new version")
    parser.add_argument("--stack", type=Path, help="TIFF to ingest (default: generated)")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work", type=Path, default=ROOT / "_work" / "ingest_compare")
    parser.add_argument("--output", type=Path, default=ROOT / "ingest_compare_results.md")
    args = parser.parse_args()
    experiment = args.work / "experiment"
    experiment.mkdir(parents=True, exist_ok=True)
    try:
        stack = experiment / "stack.tif"
        if args.stack is None:
            run_timed([sys.executable, str(ROOT / "ingest_benchmark.py"), "--generate", str(stack),
                       "--frames", str(args.frames), "--size", str(args.size)])
        elif args.stack.stat().st_dev == experiment.stat().st_dev:
            os.link(args.stack, stack)
        else:
            shutil.copy(args.stack, stack)
        cp = contender("cp", stack, args.work, None)
        before = contender("before", stack, args.work, args.before)
        after = contender("after", stack, args.work, args.after)
        cp()  # the input into the page cache
        rows = []
        for _ in range(args.rounds):
            for run in (cp, before, after, after, before, cp):
                rows.append(run())
                print(rows[-1], flush=True)
        report(args, stack, rows)
    finally:
        shutil.rmtree(args.work, ignore_errors=True)


def report(args: argparse.Namespace, stack: Path, rows: list[dict]) -> None:
    """Write the markdown results."""
    nbytes = stack.stat().st_size
    mean = {label: statistics.mean(r["seconds"] for r in rows if r["run"] == label)
            for label in ("cp", "before", "after")}
    lines = [
        "# Ingest before / after, in one run", "",
        f"Written by `benchmarks/ingest_compare.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{os.cpu_count()} CPU cores, Python {platform.python_version()}; before = `{args.before}`, "
        f"after = `{args.after}`.", "",
        f"Input: `{args.stack.name if args.stack else 'generated'}`, {nbytes / 1e9:.2f} GB TIFF; "
        "ingest with the defaults (pyramid, 2 writer threads).", "",
        "| # | run | seconds | MB/s | CPU s | peak RSS (MB) | stored (MB) | load average at start |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for number, row in enumerate(rows, 1):
        stored = f"{row['stored'] / 1e6:.0f}" if "stored" in row else ""
        lines.append(f"| {number} | {row['run']} | {row['seconds']:.2f} | "
                     f"{nbytes / row['seconds'] / 1e6:.0f} | {row['cpu']:.2f} | "
                     f"{row['rss'] / 1e6:.0f} | {stored} | {row['load']:.2f} |")
    peak = {label: max(r["rss"] for r in rows if r["run"] == label) / 1e6 for label in ("before", "after")}
    cpu = {label: statistics.mean(r["cpu"] for r in rows if r["run"] == label)
           for label in ("cp", "before", "after")}
    lines += ["", "| version | mean seconds | mean CPU s | ratio to cp (mean cp / mean ingest) "
              "| max peak RSS (MB) |", "| --- | ---: | ---: | ---: | ---: |"]
    for label in ("before", "after"):
        lines.append(f"| {label} | {mean[label]:.2f} | {cpu[label]:.2f} | "
                     f"{mean['cp'] / mean[label]:.3f} | {peak[label]:.0f} |")
    lines += ["", f"after / before time: {mean['after'] / mean['before']:.3f} "
              f"(mean cp {mean['cp']:.2f} s, {cpu['cp']:.2f} CPU s); after / before CPU time: "
              f"{cpu['after'] / cpu['before']:.3f}. CPU s is the child's user + system time "
              "(`ru_utime + ru_stime`, all threads).", ""]
    args.output.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
