"""Benchmark ``segment`` + ``measure`` of one large position: this tree against a baseline.

Writes a position of realistic size (default 200 frames of 2048 x 2048): foreground
probabilities (float16) of five growing bodies with soft edges, shed cells and debris below
the area filter, a hole in one body, and the raw image (uint16, `realistic.py`). Then, in
rounds of A-B-B-A order (A: the baseline source tree given with ``--baseline-src``, e.g. an
export of ``main``'s ``src/``; B: this tree; the next round B-A-A-B), runs ``spheroseg
segment`` and ``spheroseg measure`` as the workflow does (the segment options of
``config/config.yaml``; B with ``--threads``, default 2), each a whole process. It reports
the wall time of segment + measure, the speed-up of B over A per round (mean A / mean B),
the peak memory of each process tree (sampled from /proc: the command and its workers),
and checks that every run's labels (values), CSVs and GeoJSON (bytes) equal the first
baseline run's. ``--dask`` adds one run that segments and measures the frames with dask's
threaded scheduler (``dask.delayed``, ``threads`` workers) inside one process, to show
whether threads pay. Results go to ``benchmarks/segment_measure_results.md``.

Run from the repository root::

    python benchmarks/segment_measure_benchmark.py --baseline-src /tmp/main/src
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
WORK = ROOT / "_work" / "segment_measure"
CLI = [sys.executable, "-c", "import sys; from spheroseg.cli import main; sys.exit(main(sys.argv[1:]))"]
SEGMENT_OPTIONS = ["--method", "fixed", "--threshold", "0.5", "--min-area-um2", "2000",
                   "--split-depth", "0.3", "--max-gap", "2"]  # config/config.yaml's
PIXEL_SIZE_UM = 2.0

sys.path.insert(0, str(ROOT))
from procstats import run_measured  # noqa: E402


def make_position(folder: Path, frames: int, size: int) -> None:
    """probabilities.ome.zarr and image.ome.zarr of one position (run in a child process)."""
    import numpy as np
    from realistic import body_probabilities, realistic_frames
    from scipy import ndimage

    from spheroseg import ngff

    sizes = {"pixel_size_um": PIXEL_SIZE_UM, "time_interval_s": 600.0}
    probabilities = ngff.create_image(folder / "probabilities.ome.zarr", shape=(frames, size, size),
                                      dtype="float16", axes="tyx", **sizes)
    image = ngff.create_image(folder / "image.ome.zarr", shape=(frames, 1, size, size),
                              dtype="uint16", axes="tcyx", **sizes)
    rng = np.random.default_rng(7)
    for t, raw in enumerate(realistic_frames(frames, size)):
        frame = body_probabilities(size, t, frames)
        debris = ndimage.gaussian_filter((rng.random((size, size)) < 3e-5).astype(np.float32), 3.0)
        frame = np.maximum(frame, np.clip(debris * 60.0, 0, 1))  # small blobs: removed by area
        centre = size // 3 // 2
        frame[centre - 20:centre + 20, centre - 20:centre + 20] *= 0.2  # a hole in a body
        ngff.write_frame(probabilities, t, frame.astype(np.float16))
        ngff.write_frame(image, t, raw[None])


def dask_run(folder: Path, output: Path, threads: int) -> None:
    """Segment and measure every frame with dask, synchronously and with its threaded scheduler."""
    import dask
    import numpy as np

    from spheroseg import ngff
    from spheroseg.measure import measure_frame
    from spheroseg.segmentation import SegmentationOptions, segment_frame

    options = SegmentationOptions(min_area_px=2000 / PIXEL_SIZE_UM**2)
    probabilities = ngff.open_frames(folder / "probabilities.ome.zarr")
    image = ngff.open_frames(folder / "image.ome.zarr")

    def one(t: int) -> int:
        frame = np.asarray(probabilities[t], dtype=np.float32)
        labels, threshold = segment_frame(frame, options)
        return len(measure_frame(labels, frame, image[t, 0], threshold=threshold))

    seconds = {}
    for scheduler in ("sync", "threads", "sync", "threads"):  # A-B-A-B; the best of each
        tasks = [dask.delayed(one)(t) for t in range(probabilities.shape[0])]
        start = time.perf_counter()
        dask.compute(*tasks, scheduler=scheduler, num_workers=threads)
        seconds[scheduler] = min(seconds.get(scheduler, 1e9), time.perf_counter() - start)
    (output / "dask.json").write_text(json.dumps(seconds))


def run_image(folder: Path, out: Path) -> Path:
    """A run's own image.ome.zarr: links to the shared image's files, so that segment nests
    this run's labels (labels/segmentation) inside it without copying the frames."""
    image = out / "image.ome.zarr"
    image.mkdir()
    for entry in (folder / "image.ome.zarr").iterdir():
        if entry.name != "labels":
            (image / entry.name).symlink_to(entry.resolve())
    return image


def run_once(label: str, folder: Path, out: Path, *, src: Path | None, threads: int | None) -> dict:
    """segment + measure as two processes; seconds and peak tree memory of each."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = f"{src}{os.pathsep}{env.get('PYTHONPATH', '')}"
    extra = [] if threads is None else ["--threads", str(threads)]
    out.mkdir(parents=True)
    image = run_image(folder, out)
    load = os.getloadavg()[0]
    segment = run_measured([*CLI, "segment", "--probabilities", str(folder / "probabilities.ome.zarr"),
                            "--image", str(image), "--record", str(out / "segment.json"),
                            *SEGMENT_OPTIONS, *extra], env=env, log=out / "segment.log")
    measure = run_measured([*CLI, "measure", "--labels", str(image / "labels" / "segmentation"),
                            "--probabilities", str(folder / "probabilities.ome.zarr"),
                            "--image", str(image), "--experiment", "bench",
                            "--position", "p0", "--channel", "0", "--smoothing", "auto",
                            "--output-dir", str(out), *extra], env=env, log=out / "measure.log")
    return {"run": label, "load": load, "segment": segment, "measure": measure,
            "seconds": segment["seconds"] + measure["seconds"], "out": str(out)}


def same_outputs(first: Path, other: Path) -> str:
    """'identical' or what differs between two runs' outputs."""
    import numpy as np

    from spheroseg import ngff

    for name in ("metrics.csv", "contours.geojson", "segment.json"):
        if not filecmp.cmp(first / name, other / name, shallow=False):
            return f"{name} differs"
    for csv in sorted((first / "metrics").iterdir()):
        if not filecmp.cmp(csv, other / "metrics" / csv.name, shallow=False):
            return f"metrics/{csv.name} differs"
    labels = Path("image.ome.zarr", "labels", "segmentation")
    a, b = ngff.open_frames(first / labels), ngff.open_frames(other / labels)
    for t in range(a.shape[0]):
        if not np.array_equal(a[t], b[t]):
            return f"labels differ at frame {t}"
    return "identical"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--baseline-src", type=Path, required=True,
                        help="source tree of the baseline (e.g. `git archive main src | tar -x`)")
    parser.add_argument("--dask", action="store_true", help="add a dask threaded-scheduler run")
    parser.add_argument("--output", type=Path, default=ROOT / "segment_measure_results.md")
    parser.add_argument("--step", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        if args.step[0] == "make":
            make_position(Path(args.step[1]), args.frames, args.size)
        else:
            dask_run(Path(args.step[1]), Path(args.step[2]), args.threads)
        return
    shutil.rmtree(WORK, ignore_errors=True)
    folder = WORK / "position"
    folder.mkdir(parents=True)
    try:
        run_measured([sys.executable, __file__, "--frames", str(args.frames), "--size",
                      str(args.size), "--baseline-src", str(args.baseline_src), "--step", "make",
                      str(folder)])
        runs, count = [], 0
        for number in range(args.rounds):
            order = "ABBA" if number % 2 == 0 else "BAAB"
            for letter in order:
                count += 1
                baseline = letter == "A"
                runs.append(run_once("A baseline" if baseline else "B this tree", folder,
                                     WORK / f"run{count}", src=args.baseline_src if baseline else None,
                                     threads=None if baseline else args.threads) | {"round": number + 1})
                print(json.dumps({k: v for k, v in runs[-1].items() if k != "out"}), flush=True)
        reference = Path(runs[0]["out"])
        for run in runs:
            run["outputs"] = same_outputs(reference, Path(run["out"]))
        dask_result = None
        if args.dask:
            (WORK / "dask").mkdir()
            load = os.getloadavg()[0]
            run_measured([sys.executable, __file__, "--threads", str(args.threads),
                          "--baseline-src", str(args.baseline_src), "--step", "dask",
                          str(folder), str(WORK / "dask")])
            dask_result = json.loads((WORK / "dask" / "dask.json").read_text()) | {"load": load}
        report(args, runs, dask_result)
    finally:
        shutil.rmtree(WORK, ignore_errors=True)


def report(args: argparse.Namespace, runs: list[dict], dask_result: dict | None) -> None:
    """Write the markdown results file."""
    lines = [
        "# Segment + measure benchmark", "",
        f"Written by `benchmarks/segment_measure_benchmark.py` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPU cores "
        f"({platform.machine()}), Python {platform.python_version()}, on a machine shared with "
        "other work (load average at each run's start in the table).", "",
        f"Position: {args.frames} frames of {args.size} x {args.size}: float16 probabilities of "
        "five growing bodies (soft edges, one with a hole), shed cells and debris below the area "
        "filter; uint16 raw image (`realistic.py`). Segment options as in `config/config.yaml` "
        f"(min_area_um2 2000 at {PIXEL_SIZE_UM} um/px). A: `{args.baseline_src}` (one process, "
        f"as today); B: this tree with `--threads {args.threads}`.", "",
        "| round | run | segment s | measure s | total s | load | peak memory segment / measure (MB, process tree) | outputs vs first A |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for run in runs:
        lines.append(
            f"| {run['round']} | {run['run']} | {run['segment']['seconds']:.1f} | "
            f"{run['measure']['seconds']:.1f} | {run['seconds']:.1f} | {run['load']:.1f} | "
            f"{run['segment']['tree_rss'] / 1e6:.0f} / {run['measure']['tree_rss'] / 1e6:.0f} | "
            f"{run['outputs']} |")
    lines += ["", "| round | speed-up of B (mean A time / mean B time) |", "| ---: | ---: |"]
    for number in sorted({run["round"] for run in runs}):
        mine = [run for run in runs if run["round"] == number]
        a = statistics.mean(r["seconds"] for r in mine if r["run"].startswith("A"))
        b = statistics.mean(r["seconds"] for r in mine if r["run"].startswith("B"))
        lines.append(f"| {number} | **{a / b:.2f}** |")
    if dask_result is not None:
        lines += ["", f"dask, in one process, `segment_frame` + `measure_frame` of every frame (no "
                  f"linking or writing), best of two A-B-A-B runs (load {dask_result['load']:.1f}): "
                  f"synchronous scheduler {dask_result['sync']:.1f} s, threaded scheduler with "
                  f"{args.threads} threads {dask_result['threads']:.1f} s: speed-up "
                  f"**{dask_result['sync'] / dask_result['threads']:.2f}** (numpy, scipy.ndimage "
                  "and the contour code hold the GIL for most of a frame)."]
    lines += ["", "Outputs: labels compared value by value, `metrics.csv`, every `metrics/t*.csv` and "
              "`contours.geojson` byte by byte. Peak memory is the largest sum of the resident "
              "memory of the command and its worker processes, sampled every 0.1 s.", ""]
    args.output.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
