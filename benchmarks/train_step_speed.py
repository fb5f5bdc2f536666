"""Training speed on the CPU: NHWC (``channels_last``, the default since 2026-11-28) against
NCHW weights and batches.

Two measurements, each in A-B-B-A order with the load average recorded:

1. **Steps**: optimiser steps of the default U-Net (``UNet()``, as ``models/synthetic.pt``) on
   batches of 4 random 256 x 256 patches (the ``finetune`` recipe's batch), forward, loss,
   backward and AdamW step, timed after two warm-up steps (wall and CPU seconds per step).
2. **The loop's training**: ``spheroseg train --recipe finetune --init models/synthetic.pt``
   on the four day-2 spheroids of ``../shared/data/spheroids`` (read in place; the frames the
   human-in-the-loop benchmark's ``propose`` picks at k = 4), default against
   ``--no-channels-last``, with ``--epochs`` (default 2 of the recipe's 8, to keep the run short;
   ``--epochs 8`` times the whole recipe). Wall and CPU seconds of the subprocess, and the two
   models' largest difference in held-out probability on the day-0 images.

Run from the repository root::

    nice -n 10 python benchmarks/train_step_speed.py [--epochs 2] [--steps 12]

It writes ``benchmarks/train_step_speed_results.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

from spheroseg.atomic import write_text
from spheroseg.unet import UNet

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "spheroids"
RESULTS = Path(__file__).with_name("train_step_speed_results.md")
PICKS = ("spheroid5_day2", "spheroid2_day2", "spheroid9_day2", "spheroid1_day2")
ORDER = (True, False, False, True)


def step_seconds(channels_last: bool, steps: int) -> tuple[float, float]:
    """(wall, CPU) seconds per training step of UNet() on 4 x 1 x 256 x 256, after 2 warm-ups."""
    torch.manual_seed(0)
    model = UNet()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4)
    images = torch.randn(4, 1, 256, 256)
    masks = (torch.rand(4, 1, 256, 256) > 0.5).float()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    for step in range(steps + 2):
        if step == 2:
            wall, cpu = time.perf_counter(), time.process_time()
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(images), masks)
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def write_pairs(folder: Path) -> None:
    """The picked spheroids as an annotation folder (images/, masks/)."""
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True)
    for name in PICKS:
        tifffile.imwrite(folder / "images" / f"{name}.tif", tifffile.imread(DATA / f"{name}.tif"))
        mask = tifffile.imread(DATA / f"{name}_mask.tif") > 0
        tifffile.imwrite(folder / "masks" / f"{name}.tif", mask.astype(np.uint8))


def train(folder: Path, output: Path, channels_last: bool, epochs: int) -> tuple[float, float]:
    """(wall, CPU) seconds of one ``spheroseg train --recipe finetune`` subprocess."""
    command = [str(Path(sys.executable).parent / "spheroseg"), "train", "--annotations", str(folder),
               "--output", str(output), "--recipe", "finetune", "--init", str(ROOT / "models" / "synthetic.pt"),
               "--seed", "0", "--no-progress", "--epochs", str(epochs)]
    if not channels_last:
        command.append("--no-channels-last")
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"training failed: {result.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def probability_difference(first: Path, second: Path) -> float:
    """Largest difference of the two models' probabilities on the day-0 images (not trained on)."""
    from spheroseg.normalization import normalize_image

    largest = 0.0
    models = [torch.jit.load(str(path)).eval() for path in (first, second)]
    spec = json.loads(first.with_suffix(".json").read_text())["input"]["normalization"]
    spec = {key: value for key, value in spec.items() if key != "scope"}  # each image alone: same for both
    for name in sorted(p.stem for p in DATA.glob("*_day0.tif")):
        image = normalize_image(tifffile.imread(DATA / f"{name}.tif"), spec)
        height, width = (side - side % 8 for side in image.shape)
        batch = torch.from_numpy(np.ascontiguousarray(image[:height, :width], dtype=np.float32))[None, None]
        with torch.no_grad():
            outputs = [torch.sigmoid(model(batch)) for model in models]
        largest = max(largest, float((outputs[0] - outputs[1]).abs().max()))
    return largest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each training run (the recipe has 8)")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per layout in the step measurement")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"skipped: {DATA} is absent")
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = ["# Training speed: NHWC (channels_last) against NCHW", "",
             "Written by `benchmarks/train_step_speed.py` (do not edit by hand).", "",
             f"Run {started} on {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
             f"{torch.get_num_threads()} torch threads; command `python {' '.join(sys.argv)}`.", "",
             "## Optimiser steps of UNet() on 4 x 256^2 patches", "",
             "| order | layout | wall s / step | CPU s / step | load |", "| --- | --- | --- | --- | --- |"]
    steps: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for index, layout in enumerate(ORDER):
        load = os.getloadavg()[0]
        wall, cpu = step_seconds(layout, args.steps)
        steps[layout].append((wall, cpu))
        lines.append(f"| {index + 1} | {'NHWC' if layout else 'NCHW'} | {wall:.3f} | {cpu:.3f} | {load:.2f} |")
        print(lines[-1], flush=True)
    ratio = np.mean([c for _, c in steps[False]]) / np.mean([c for _, c in steps[True]])
    lines += ["", f"NCHW / NHWC CPU time per step: **{ratio:.2f}**", "",
              f"## `spheroseg train --recipe finetune`, {args.epochs} epochs, the 4 day-2 spheroids", "",
              "| order | layout | wall s | CPU s | load |", "| --- | --- | --- | --- | --- |"]
    runs: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="train-speed-") as tmp:
        work = Path(tmp)
        write_pairs(work / "annotations")
        for index, layout in enumerate(ORDER):
            load = os.getloadavg()[0]
            wall, cpu = train(work / "annotations", work / f"{index}.pt", layout, args.epochs)
            runs[layout].append((wall, cpu))
            lines.append(f"| {index + 1} | {'NHWC' if layout else 'NCHW'} | {wall:.1f} | {cpu:.1f} | {load:.2f} |")
            print(lines[-1], flush=True)
        difference = probability_difference(work / "0.pt", work / "1.pt")
        same_layout = probability_difference(work / "0.pt", work / "3.pt")
    ratio = np.mean([c for _, c in runs[False]]) / np.mean([c for _, c in runs[True]])
    lines += ["", f"NCHW / NHWC CPU time of the training process: **{ratio:.2f}**", "",
              f"Largest difference in probability on the four day-0 images between an NHWC and an NCHW "
              f"model: {difference:.2g}; between the two NHWC runs: {same_layout:.2g}.", "",
              f"Load average at the end {tuple(round(v, 2) for v in os.getloadavg())}; finished "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", ""]
    write_text(RESULTS, "\n".join(lines))
    print(RESULTS)


if __name__ == "__main__":
    main()
