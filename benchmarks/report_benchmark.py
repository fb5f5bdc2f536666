"""Benchmark of the report steps on a long, large time-lapse: time, peak memory, file sizes.

Builds one synthetic position (T frames of S x S uint16: two growing ellipses on a noisy,
unevenly lit background, a sudden blob at T/2), runs the real `spheroseg segment` and
`spheroseg measure` on it, then times `spheroseg report qc` and `spheroseg report position`
(each in a fresh process; peak RSS from the child's rusage) and writes the results table to
benchmarks/report_results.md.

    nice python benchmarks/report_benchmark.py [--frames 120] [--size 1024] [--work DIR]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.special import expit

HERE = Path(__file__).resolve().parent
SPHEROSEG = str(Path(sys.executable).parent / "spheroseg")


def _frame(t: int, frames: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Image (uint16) and foreground probability (float32) of frame `t`."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    inside = np.zeros((size, size), np.float32)
    for cy, cx, radius in ((0.35, 0.3, 0.10), (0.65, 0.7, 0.07)):
        grow = 1 + 0.6 * t / max(frames - 1, 1)
        distance = np.hypot((y - cy) / (radius * grow), (x - cx) / (radius * grow * 1.2))
        inside = np.maximum(inside, expit((1 - distance) * 40))
    if t == frames // 2:  # the sudden artefact QC must flag
        blob = np.hypot(y - 0.35, x - 0.50) / 0.09
        inside = np.maximum(inside, expit((1 - blob) * 40))
    light = 300 + 200 * x
    image = light + 1500 * inside + rng.normal(0, 60, (size, size))
    return np.clip(image, 0, 65535).astype(np.uint16), inside


def build_position(folder: Path, *, frames: int, size: int) -> None:
    """Image, probabilities, labels, contours and metrics of one synthetic position."""
    from spheroseg import ngff
    from spheroseg.atomic import atomic_path

    rng = np.random.default_rng(0)
    with atomic_path(folder / "image.ome.zarr", directory=True) as image_tmp, \
            atomic_path(folder / "probabilities.ome.zarr", directory=True) as prob_tmp:
        sizes = dict(pixel_size_um=0.65, time_interval_s=600.0)
        image = ngff.create_image(image_tmp, shape=(frames, 1, size, size), dtype="uint16", axes="tcyx", **sizes)
        prob = ngff.create_image(prob_tmp, shape=(frames, size, size), dtype="float16", axes="tyx", **sizes)
        for t in range(frames):
            pixels, inside = _frame(t, frames, size, rng)
            image[t, 0] = pixels
            prob[t] = inside.astype(np.float16)
    run([SPHEROSEG, "segment", "--probabilities", str(folder / "probabilities.ome.zarr"),
         "--image", str(folder / "image.ome.zarr")])
    run([SPHEROSEG, "measure", "--labels", str(folder / "image.ome.zarr" / "labels" / "segmentation"),
         "--probabilities",
         str(folder / "probabilities.ome.zarr"), "--image", str(folder / "image.ome.zarr"),
         "--experiment", "bench", "--position", "p0", "--output-dir", str(folder)])


def run(command: list[str]) -> tuple[float, float]:
    """Run `command`; return (wall seconds, peak RSS in MB of the child)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{command[:3]} failed: {process.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="report-bench-"))
    folder = work / "p0"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "metrics.csv").exists():
        build_position(folder, frames=args.frames, size=args.size)
    rows = [("report qc", *run([SPHEROSEG, "report", "qc", "--metrics", str(folder / "metrics.csv"),
                                "--probabilities", str(folder / "probabilities.ome.zarr"), "--experiment",
                                "bench", "--position", "p0", "--output", str(folder / "qc.csv")]))]
    rows.append(("report position", *run([
        SPHEROSEG, "report", "position", "--metrics", str(folder / "metrics.csv"), "--qc", str(folder / "qc.csv"),
        "--image", str(folder / "image.ome.zarr"), "--contours", str(folder / "contours.geojson"),
        "--output-dir", str(folder / "report"), "--title", "bench / p0"])))
    flagged = [f"{fields[2]} (object {fields[4]})" for fields in
               (line.split(",") for line in (folder / "qc.csv").read_text().splitlines()[1:])
               if fields[5] == "area_jump"]
    write_results(args, rows, folder, flagged)


def write_results(args: argparse.Namespace, rows: list[tuple[str, float, float]], folder: Path,
                  flagged: list[str]) -> None:
    """Write benchmarks/report_results.md."""
    from PIL import Image

    sizes = []
    for name in ("metrics_over_time.png", "metrics_over_time.svg", "montage.png", "overlay.gif", "overlay.html"):
        path = folder / "report" / name
        shape = ""
        if path.suffix in (".png", ".gif"):
            with Image.open(path) as image:
                frames = getattr(image, "n_frames", 1)
                shape = f"{image.size[0]} x {image.size[1]}" + (f", {frames} frames" if frames > 1 else "")
        sizes.append(f"| {name} | {path.stat().st_size / 1e6:.2f} | {shape} |")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Report benchmark", "",
        f"Written by `benchmarks/report_benchmark.py` on {stamp}; {os.cpu_count()} CPU cores, Python "
        f"{platform.python_version()}, run with nice on a machine shared with other work "
        f"(load average {os.getloadavg()[0]:.1f} at the end).", "",
        f"Input: one synthetic position, {args.frames} frames x {args.size} x {args.size} uint16, two growing "
        f"bodies, a sudden blob at frame {args.frames // 2}; segmented and measured by the real "
        "`spheroseg segment` / `spheroseg measure`. Defaults: montage 16 frames, GIF 60 frames at 320 px.", "",
        "| step | seconds | peak RSS (MB) |", "| --- | ---: | ---: |",
        *(f"| {name} | {seconds:.1f} | {rss:.0f} |" for name, seconds, rss in rows), "",
        "| output | MB | pixels |", "| --- | ---: | --- |", *sizes, "",
        f"QC area jumps flagged at frames: {', '.join(flagged) or 'none'} "
        f"(the blob is at frame {args.frames // 2} and gone at {args.frames // 2 + 1}).", "",
    ]
    (HERE / "report_results.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
