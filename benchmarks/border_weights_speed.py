"""Speed of the U-Net border weight maps on real annotated masks: windowed against whole-frame.

``spheroseg.training.loss.border_weight_map`` computes each object's distance transform only
within reach of its bounding box (39 px at the defaults w0 = 10, sigma = 5). Before
2026-11-28 it computed one whole-frame distance transform per object, so a day-2 spheroid
mask with hundreds of shed fragments took seconds per image and the ``finetune`` recipe,
which uses border weights, spent 20-30 CPU s of its training on them. This script times both
on the masks of ``../shared/data/spheroids`` (read in place; skipped when absent), in
A-B-B-A order per mask, checks that the maps are equal to the bit, and records the load.
Run from the repository root::

    nice python benchmarks/border_weights_speed.py

It writes ``benchmarks/border_weights_speed_results.md``.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage

from spheroseg.atomic import write_text
from spheroseg.training.loss import border_weight_map, class_balance_weights

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "spheroids"
RESULTS = Path(__file__).with_name("border_weights_speed_results.md")


def whole_frame(mask: np.ndarray, *, w0: float = 10.0, sigma: float = 5.0) -> np.ndarray:
    """The map as computed before: every object's distance transform over the whole frame."""
    foreground = mask > 0
    labels, count = ndimage.label(foreground)
    class_weight = class_balance_weights(foreground)
    if count < 2:
        return class_weight
    nearest = np.full(foreground.shape, np.inf, dtype=np.float32)
    second = np.full(foreground.shape, np.inf, dtype=np.float32)
    for label in range(1, count + 1):
        distance = ndimage.distance_transform_edt(labels != label).astype(np.float32)
        second = np.minimum(second, np.maximum(nearest, distance))
        nearest = np.minimum(nearest, distance)
    border = w0 * np.exp(-((nearest + second) ** 2) / (2.0 * sigma**2))
    return (class_weight + np.where(foreground, 0.0, border)).astype(np.float32)


def cpu_seconds(function, mask: np.ndarray) -> tuple[float, np.ndarray]:  # type: ignore[no-untyped-def]
    """CPU seconds of one call (this process, all threads) and its result."""
    start = time.process_time()
    result = function(mask)
    return time.process_time() - start, result


def main() -> int:
    masks = sorted(DATA.glob("*_mask.tif"))
    if not masks:
        print(f"skipped: no masks in {DATA}")
        return 0
    load_before = os.getloadavg()
    rows, totals = [], {"whole": 0.0, "windowed": 0.0}
    for path in masks:
        mask = tifffile.imread(path) > 0
        count = ndimage.label(mask)[1]
        times = {"whole": [], "windowed": []}
        maps = {}
        for name in ("whole", "windowed", "windowed", "whole"):  # A-B-B-A
            seconds, maps[name] = cpu_seconds(whole_frame if name == "whole" else border_weight_map, mask)
            times[name].append(seconds)
        equal = np.array_equal(maps["whole"], maps["windowed"])
        if not equal:
            print(f"{path.name}: the maps differ", file=sys.stderr)
            return 1
        whole, windowed = (float(np.mean(times[name])) for name in ("whole", "windowed"))
        totals["whole"] += whole
        totals["windowed"] += windowed
        rows.append(f"| {path.name} | {mask.shape[0]} x {mask.shape[1]} | {count} | {whole:.3f} | {windowed:.3f} | "
                    f"{whole / windowed:.1f} | {'yes' if equal else 'no'} |")
        print(rows[-1], flush=True)
    load_after = os.getloadavg()
    lines = [
        "# Border weight maps: windowed against whole-frame distance transforms",
        "",
        "Written by `benchmarks/border_weights_speed.py` (do not edit by hand).",
        "",
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.machine()}, Python "
        f"{platform.python_version()}; load average before {tuple(round(x, 2) for x in load_before)}, after "
        f"{tuple(round(x, 2) for x in load_after)} (shared 2-core machine). CPU seconds (`time.process_time`) of "
        "one map per call, mean of two calls each in A-B-B-A order (whole, windowed, windowed, whole) per mask; "
        "the maps are compared bit for bit.",
        "",
        "| mask | shape | objects | whole-frame CPU s | windowed CPU s | whole / windowed | equal |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
        *rows,
        "",
        f"All {len(rows)} masks: whole-frame {totals['whole']:.2f} CPU s, windowed {totals['windowed']:.2f} CPU s "
        f"(ratio {totals['whole'] / totals['windowed']:.0f}).",
        "",
    ]
    write_text(RESULTS, "\n".join(lines))
    print(RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
