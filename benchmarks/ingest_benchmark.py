"""Benchmark ``spheroseg ingest``: peak memory and throughput relative to ``cp``.

Writes a synthetic time-lapse stack (default 200 frames of 2048 x 2048 uint16, 1.6 GB:
a growing bright disk on a noisy camera background, 12-bit values) to ``benchmarks/_work/``,
then, alternating, copies it with ``cp`` and ingests it with ``spheroseg ingest`` in a
child process (peak RSS from ``wait4``), on the same disk. Results go to
``benchmarks/ingest_results.md``; the work folder is deleted at the end.

Run from the repository root: ``nice python benchmarks/ingest_benchmark.py``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent
WORK = ROOT / "_work"
CLI = "import sys; from spheroseg.cli import main; sys.exit(main(sys.argv[1:]))"


def write_stack(path: Path, *, frames: int, size: int) -> int:
    """Write a frames x size x size uint16 TIFF one frame at a time; return its byte size."""
    import numpy as np
    import tifffile

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    radius2 = (yy - size / 2) ** 2 + (xx - size / 2) ** 2
    with tifffile.TiffWriter(path, bigtiff=True) as writer:
        for t in range(frames):
            disk = radius2 < (size * (0.15 + 0.2 * t / max(frames, 1))) ** 2
            frame = 200.0 + 1500.0 * disk + rng.normal(0.0, 12.0, (size, size))
            writer.write(np.clip(frame, 0, 4095).astype(np.uint16), contiguous=True,
                         photometric="minisblack", metadata=None)
    return path.stat().st_size


def run_timed(command: list[str]) -> tuple[float, int]:
    """Run a command; return wall seconds and the child's peak RSS in bytes."""
    start = time.perf_counter()
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"command failed: {command}")
    return elapsed, usage.ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--output", type=Path, default=ROOT / "ingest_results.md")
    parser.add_argument("--generate", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate is not None:
        write_stack(args.generate, frames=args.frames, size=args.size)
        return
    WORK.mkdir(parents=True, exist_ok=True)
    experiment = WORK / "experiment"
    experiment.mkdir(exist_ok=True)
    source = experiment / "stack.tif"
    try:
        # Generate in a child: a forked child inherits the parent's peak RSS (Linux keeps
        # it across exec), so the parent must stay small for the RSS figures to be honest.
        run_timed([sys.executable, __file__, "--generate", str(source), "--frames",
                   str(args.frames), "--size", str(args.size)])
        nbytes = source.stat().st_size
        rows = []
        for repeat in range(args.repeats):
            rows.append(("cp", *run_timed(["cp", str(source), str(WORK / "copy.tif")])))
            (WORK / "copy.tif").unlink()
            for label, extra in (("ingest", []), ("ingest --no-pyramid", ["--no-pyramid"])):
                out = WORK / "out" / "image.ome.zarr"
                command = [sys.executable, "-c", CLI, "ingest", "--experiment",
                           str(experiment), "--position", "stack", "--output", str(out),
                           "--time-interval-s", "300", *extra]
                elapsed, rss = run_timed(command)
                stored = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
                rows.append((label, elapsed, rss, stored))
                shutil.rmtree(WORK / "out")
        report(args, nbytes, rows)
    finally:
        shutil.rmtree(WORK, ignore_errors=True)


def report(args: argparse.Namespace, nbytes: int, rows: list[tuple]) -> None:
    """Write the markdown results file."""
    cp_best = min(row[1] for row in rows if row[0] == "cp")
    lines = [
        "# Ingest benchmark", "",
        f"Written by `benchmarks/ingest_benchmark.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{os.cpu_count()} CPU cores, Python {platform.python_version()}, run with "
        f"{'nice ' if os.nice(0) > 0 else ''}on a machine shared with other work "
        f"(load average {os.getloadavg()[0]:.1f} at the end).", "",
        f"Input: one TIFF, {args.frames} frames x {args.size} x {args.size} uint16 "
        f"({nbytes / 1e9:.2f} GB), synthetic (disk on noisy 12-bit background).",
        "Output: NGFF 0.5 / Zarr v3, chunks (1, 1, 512, 512), Blosc LZ4 + bit-shuffle, "
        "2 writer threads; the default also writes 2x pyramid levels down to 256 px.", "",
        "| run | seconds | MB/s | ratio to best cp | peak RSS (MB) | stored (MB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, seconds, rss, *stored in rows:
        size = f"{stored[0] / 1e6:.0f}" if stored else ""
        lines.append(f"| {label} | {seconds:.2f} | {nbytes / seconds / 1e6:.0f} | "
                     f"{cp_best / seconds:.2f} | {rss / 1e6:.0f} | {size} |")
    lines += ["", "Ratio = time of the fastest `cp` of the same file to the same disk / time of "
              "the run (1.0 = as fast as cp); both read the input from the page cache and write "
              "to the same disk without fsync. Peak RSS is the child process's `ru_maxrss` "
              "(for `cp` it is the benchmark's own small Python parent, inherited at fork).",
              ""]
    args.output.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
