"""Benchmark ``spheroseg ingest``: throughput relative to ``cp``, peak memory, exact read-back.

Writes a TIFF of realistic content (default 200 frames of 2048 x 2048 uint16, 1.68 GB:
growing textured bodies with shed cells under uneven illumination, Poisson and read noise
drawn afresh for every frame; `realistic.py`) to ``benchmarks/_work/``. Then, in rounds of
A-B-B-A order (``cp``, ingest, ingest, ``cp``; the next round B-A-A-B), copies it with ``cp``
and ingests it with ``spheroseg ingest`` (pyramid on, the workflow's defaults) in a child
process on the same disk, with ``sync`` before each timed run so that no run pays for the
previous one's write-back. The ratio of a round is the mean ``cp`` time over the mean ingest
time of that round; the load average is recorded at each run's start. Finally the image is
read back frame by frame and compared with the TIFF (level 0 exactly; level 1 with
`spheroseg.ngff.downsample_plane` of the TIFF frame).

``--src DIR`` runs the ingest from another source tree (e.g. an export of ``main``'s
``src/``) for a before/after comparison in the same run. Results go to
``benchmarks/ingest_results.md``; the work folder is deleted at the end.

Run from the repository root: ``python benchmarks/ingest_benchmark.py``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
WORK = ROOT / "_work" / "ingest"
CLI = "import sys; from spheroseg.cli import main; sys.exit(main(sys.argv[1:]))"


def write_stack(path: Path, *, frames: int, size: int) -> None:
    """Write a frames x size x size uint16 TIFF of realistic content, one frame at a time."""
    import tifffile

    sys.path.insert(0, str(ROOT))
    from realistic import realistic_frames

    with tifffile.TiffWriter(path, bigtiff=True) as writer:
        for frame in realistic_frames(frames, size):
            writer.write(frame, contiguous=True, photometric="minisblack", metadata=None)


def run_timed(command: list[str], *, env: dict[str, str] | None = None) -> tuple[float, int, float]:
    """Run a command after ``sync``; return wall seconds, the child's peak RSS in bytes and
    its CPU seconds (user + system, all threads)."""
    os.sync()
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"command failed: {command}")
    return elapsed, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime


def check_read_back(source: Path, image: Path) -> str:
    """Compare the ingested image with the TIFF, frame by frame; return a one-line verdict."""
    import numpy as np
    import tifffile

    from spheroseg import ngff

    level0, level1 = ngff.open_array(image, 0), ngff.open_array(image, 1)
    with tifffile.TiffFile(source) as tif:
        for t, page in enumerate(tif.pages):
            frame = page.asarray()
            if not np.array_equal(np.asarray(level0[t, 0]), frame):
                return f"level 0 differs from the TIFF at frame {t}"
            if not np.array_equal(np.asarray(level1[t, 0]), ngff.downsample_plane(frame)):
                return f"level 1 differs from the TIFF's 2x block mean at frame {t}"
    return f"all {t + 1} frames equal to the TIFF (level 0), level 1 equal to its 2x block mean"


class Runner:
    """The contenders of one run: ``cp`` and ingest (from this tree or `--src`)."""

    def __init__(self, source: Path, experiment: Path, src: Path | None, extra: list[str]) -> None:
        self.source, self.experiment, self.extra = source, experiment, extra
        self.env = dict(os.environ)
        if src is not None:
            self.env["PYTHONPATH"] = f"{src}{os.pathsep}{self.env.get('PYTHONPATH', '')}"
        self.out, self.count = WORK / "out0", 0

    def cp(self) -> dict:
        load = os.getloadavg()[0]
        seconds, rss, cpu = run_timed(["cp", str(self.source), str(WORK / "copy.tif")])
        (WORK / "copy.tif").unlink()
        return {"run": "cp", "seconds": seconds, "rss": rss, "load": load, "cpu": cpu}

    def ingest(self) -> dict:
        self.count += 1
        self.out = WORK / f"out{self.count}" / "image.ome.zarr"
        load = os.getloadavg()[0]
        command = [sys.executable, "-c", CLI, "ingest", "--experiment", str(self.experiment),
                   "--position", "stack", "--output", str(self.out), "--time-interval-s", "300",
                   *self.extra]
        seconds, rss, cpu = run_timed(command, env=self.env)
        stored = sum(f.stat().st_size for f in self.out.rglob("*") if f.is_file())
        files = sum(1 for f in self.out.rglob("*") if f.is_file())
        return {"run": "ingest", "seconds": seconds, "rss": rss, "load": load, "cpu": cpu,
                "stored": stored, "files": files}


def measure_rounds(runner: Runner, rounds: int) -> list[list[dict]]:
    """Rounds of A-B-B-A (even rounds) or B-A-A-B (odd rounds).

    Outputs stay until the end: right after many deletions ext4 allocates inodes slowly
    (it skips recently deleted ones), which would charge a run for its predecessor's cleanup.
    """
    results = []
    for number in range(rounds):
        if number % 2 == 0:
            runs = [runner.cp(), runner.ingest(), runner.ingest(), runner.cp()]
        else:
            runs = [runner.ingest(), runner.cp(), runner.cp(), runner.ingest()]
        results.append(runs)
        print(runs, flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--src", type=Path, default=None,
                        help="source tree to import spheroseg from (default: the installed one)")
    parser.add_argument("--no-pyramid", action="store_true", help="ingest without the pyramid")
    parser.add_argument("--output", type=Path, default=ROOT / "ingest_results.md")
    parser.add_argument("--generate", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate is not None:
        write_stack(args.generate, frames=args.frames, size=args.size)
        return
    experiment = WORK / "experiment"
    experiment.mkdir(parents=True, exist_ok=True)
    source = experiment / "stack.tif"
    try:
        # Generate in a child so that this parent stays small (its RSS is inherited at fork).
        run_timed([sys.executable, __file__, "--generate", str(source), "--frames",
                   str(args.frames), "--size", str(args.size)])
        runner = Runner(source, experiment, args.src, ["--no-pyramid"] if args.no_pyramid else [])
        runner.cp()  # the input into the page cache
        rounds = measure_rounds(runner, args.rounds)
        verdict = "not checked (--no-pyramid)" if args.no_pyramid else check_read_back(source, runner.out)
        report(args, source.stat().st_size, rounds, verdict)
    finally:
        shutil.rmtree(WORK, ignore_errors=True)


def report(args: argparse.Namespace, nbytes: int, rounds: list[list[dict]], verdict: str) -> None:
    """Write the markdown results file."""
    ratios = []
    lines = [
        "# Ingest benchmark", "",
        f"Written by `benchmarks/ingest_benchmark.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{os.cpu_count()} CPU cores ({platform.machine()}), Python {platform.python_version()}, on a "
        f"machine shared with other work (load average at each run's start in the table).", "",
        f"Input: one TIFF, {args.frames} frames x {args.size} x {args.size} uint16 "
        f"({nbytes / 1e9:.2f} GB) of realistic content (`benchmarks/realistic.py`: textured "
        "growing bodies and shed cells, uneven illumination, Poisson and read noise new in "
        "every frame). Ingest: `spheroseg ingest` at the workflow defaults"
        f"{' with --no-pyramid' if args.no_pyramid else ' (pyramid on)'}"
        f"{f', spheroseg imported from {args.src}' if args.src else ''}.", "",
        "| round | order | run | seconds | MB/s | CPU s | load | peak RSS (MB) | stored (MB) | files |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for number, runs in enumerate(rounds, 1):
        order = "A-B-B-A" if number % 2 else "B-A-A-B"
        for run in runs:
            stored = f"{run['stored'] / 1e6:.0f} | {run['files']}" if "stored" in run else " | "
            lines.append(f"| {number} | {order} | {run['run']} | {run['seconds']:.2f} | "
                         f"{nbytes / run['seconds'] / 1e6:.0f} | {run['cpu']:.2f} | {run['load']:.1f} | "
                         f"{run['rss'] / 1e6:.0f} | {stored} |")
        cp = statistics.mean(r["seconds"] for r in runs if r["run"] == "cp")
        ingest = statistics.mean(r["seconds"] for r in runs if r["run"] == "ingest")
        ratios.append(cp / ingest)
    lines += ["", "| round | ingest / cp speed (mean cp time / mean ingest time) |", "| ---: | ---: |"]
    lines += [f"| {number} | **{ratio:.2f}** |" for number, ratio in enumerate(ratios, 1)]
    lines += ["", f"Read-back: {verdict}.", "",
              "Both read the input from the page cache and write to the same disk without fsync; "
              "`sync` runs (untimed) before each timed run, and every run writes a new output "
              "(all deleted at the end: right after many deletions ext4 allocates inodes "
              "slowly, which would charge a run for the previous run's cleanup). Peak RSS is the child's `ru_maxrss` "
              "(for `cp` the benchmark's own small parent, inherited at fork). CPU s is the "
              "child's user + system time over all its threads (`ru_utime + ru_stime`); it "
              "does not include the kernel's later write-back of the dirty pages.", ""]
    args.output.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
