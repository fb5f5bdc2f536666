"""Benchmark ``spheroseg ingest`` of a vendor file (CZI through bioio): time and peak memory.

Writes a CZI time series with pylibCZIrw (the ``vendor`` extra; default 100 frames of
2048 x 2048 uint16, 0.84 GB, the same content as ``ingest_benchmark.write_stack``), then
alternates ``cp`` of it and ``spheroseg ingest`` of it in child processes (peak RSS from
``wait4``), ``sync`` before each. Peak RSS far below the file's size shows that frames are
streamed one timepoint at a time. Results go to ``benchmarks/vendor_ingest_results.md``;
the work folder is deleted at the end.

Run from the repository root: ``python benchmarks/vendor_ingest_benchmark.py``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_compare import CLI, run_timed  # noqa: E402

ROOT = Path(__file__).resolve().parent
WORK = ROOT / "_work" / "vendor"


def write_czi(path: Path, *, frames: int, size: int) -> None:
    """A one-scene CZI time series, frames x size x size uint16, 0.5 µm pixels."""
    import numpy as np
    from pylibCZIrw import czi

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    radius2 = (yy - size / 2) ** 2 + (xx - size / 2) ** 2
    with czi.create_czi(str(path), exist_ok=True) as writer:
        for t in range(frames):
            disk = radius2 < (size * (0.15 + 0.2 * t / max(frames, 1))) ** 2
            frame = 200.0 + 1500.0 * disk + rng.normal(0.0, 12.0, (size, size))
            writer.write(np.clip(frame, 0, 4095).astype(np.uint16), plane={"T": t, "C": 0})
        writer.write_metadata(document_name="bench", scale_x=0.5e-6, scale_y=0.5e-6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--output", type=Path, default=ROOT / "vendor_ingest_results.md")
    parser.add_argument("--generate", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate is not None:
        write_czi(args.generate, frames=args.frames, size=args.size)
        return
    experiment = WORK / "experiment"
    experiment.mkdir(parents=True, exist_ok=True)
    source = experiment / "stack.czi"
    try:
        run_timed([sys.executable, __file__, "--generate", str(source), "--frames",
                   str(args.frames), "--size", str(args.size)])
        rows = []
        for _ in range(args.repeats):
            load = os.getloadavg()[0]
            rows.append(("cp", *run_timed(["cp", str(source), str(WORK / "copy.czi")]), load))
            (WORK / "copy.czi").unlink()
            out = WORK / "out" / "image.ome.zarr"
            load = os.getloadavg()[0]
            rows.append(("ingest", *run_timed([sys.executable, "-c", CLI, "ingest", "--experiment",
                                               str(experiment), "--position", "stack", "--output",
                                               str(out), "--time-interval-s", "300"]), load))
            shutil.rmtree(WORK / "out")
        report(args, source.stat().st_size, rows)
    finally:
        shutil.rmtree(WORK, ignore_errors=True)


def report(args: argparse.Namespace, nbytes: int, rows: list[tuple]) -> None:
    """Write the markdown results."""
    cp = statistics.mean(seconds for label, seconds, *_ in rows if label == "cp")
    lines = ["# Vendor (CZI) ingest benchmark", "",
             f"Written by `benchmarks/vendor_ingest_benchmark.py` on "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPU cores, "
             f"Python {platform.python_version()}.", "",
             f"Input: one CZI (pylibCZIrw, uncompressed), {args.frames} frames x {args.size} x "
             f"{args.size} uint16 ({nbytes / 1e9:.2f} GB); ingest with the defaults (pyramid).", "",
             "| run | seconds | MB/s | ratio to mean cp | peak RSS (MB) | load average at start |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for label, seconds, rss, load in rows:
        lines.append(f"| {label} | {seconds:.2f} | {nbytes / seconds / 1e6:.0f} | {cp / seconds:.2f} | "
                     f"{rss / 1e6:.0f} | {load:.2f} |")
    lines += ["", "Peak RSS is the child's `ru_maxrss`; for `cp` it is inherited from this small "
              "parent. Memory well below the file size: frames are read one timepoint at a time.", ""]
    args.output.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
