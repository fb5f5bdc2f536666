"""Training benchmarks on real data (not run in CI): ISBI 2012, spheroids, and the default model.

Usage (from the repository root; run on a quiet machine, or with ``nice``)::

    nice python benchmarks/train_benchmark.py                 # all sections
    nice python benchmarks/train_benchmark.py --only isbi     # one section (others kept from before)

Each section stores its figures in ``benchmarks/train_results.json`` and the script rewrites
``benchmarks/train_results.md`` from all stored sections. The data are read in place from
``../shared/data`` (README there); a section whose data are missing is skipped.

- ``isbi``: train on slice00-slice24 (slice22-24 held out for validation/early stopping),
  at most 15 minutes of training; foreground IoU on slice25-slice29 (target >= 0.85).
- ``spheroids``: train on spheroids 1, 2, 5 (day 0 and 2), full resolution, with
  ``--intensity-augment mild``; IoU on spheroid 9 day 0 and day 2 at full resolution
  (target >= 0.90 each).
- ``spheroids-seed1``, ``spheroids-seed2``: the same with training seeds 1 and 2 (the spread).
- ``spheroids-full-intensity``: the same with ``--intensity-augment full`` (comparison).
- ``spheroids-finetune``: the same as ``spheroids``, starting from ``models/default.pt`` (``--init``).
- ``default``: the shipped ``models/default.pt`` on synthetic demo positions (area error
  after the pipeline's segmentation step) and, for information, on the real spheroids.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS_JSON = ROOT / "benchmarks" / "train_results.json"
RESULTS_MD = ROOT / "benchmarks" / "train_results.md"
SPHEROID_SCALE = 4  # the default model (trained at 2 um pixels) sees the spheroids 4x downscaled


def _otsu_iou(image: np.ndarray, truth: np.ndarray) -> float:
    """IoU of Otsu's threshold (bright = foreground), the baseline."""
    from skimage.filters import threshold_otsu

    from spheroseg.training.evaluate import foreground_scores

    return foreground_scores(image > threshold_otsu(image), truth)["iou"]


def _predict(model_path: Path, image: np.ndarray) -> np.ndarray:
    """Probability map of an exported model on a raw image (normalised as its card says)."""
    from spheroseg.modelcard import read_verified_card
    from spheroseg.normalization import normalize_image
    from spheroseg.training.evaluate import predict_logits

    card = read_verified_card(model_path)
    model = torch.jit.load(str(model_path), map_location="cpu").eval()
    normalised = normalize_image(image, card["input"]["normalization"])
    logits = predict_logits(model, normalised, divisor=card["spatial_divisor"], tile=512)
    return 1.0 / (1.0 + np.exp(-logits))


def _train(annotations: Path, output: Path, args: list[str]) -> float:
    """Run ``spheroseg train``; return the wall time in seconds."""
    from spheroseg.cli import main

    started = time.monotonic()
    status = main(["train", "--annotations", str(annotations), "--output", str(output), *args])
    if status != 0:
        raise RuntimeError(f"training failed with status {status}")
    return time.monotonic() - started


def _link_pairs(folder: Path, pairs: list[tuple[Path, Path, str]]) -> Path:
    """Make a side-by-side annotation folder of symlinks (data stay in place)."""
    folder.mkdir(parents=True)
    for image, mask, name in pairs:
        (folder / f"{name}{image.suffix}").symlink_to(image)
        (folder / f"{name}_mask{mask.suffix}").symlink_to(mask)
    return folder


def bench_isbi(scratch: Path) -> dict:
    """Train on ISBI slice00-24 (<= 15 min), evaluate foreground IoU on slice25-29."""
    import imageio.v3 as iio

    from spheroseg.training.evaluate import foreground_scores

    source = DATA / "isbi2012"
    pairs = [(source / "images" / f"slice{i:02d}.png", source / "labels" / f"slice{i:02d}.png", f"slice{i:02d}")
             for i in range(25)]
    annotations = _link_pairs(scratch / "isbi", pairs)
    settings = ["--epochs", "25", "--steps-per-epoch", "16", "--batch-size", "4", "--patch-size", "256",
                "--val-names", "slice22", "slice23", "slice24", "--patience", "8", "--max-minutes", "14.5",
                "--mask-kind", "binary", "--seed", "0", "--no-progress"]
    model = scratch / "isbi.pt"
    wall = _train(annotations, model, settings)
    rows, ious = [], []
    for i in range(25, 30):
        image = iio.imread(source / "images" / f"slice{i:02d}.png")
        truth = iio.imread(source / "labels" / f"slice{i:02d}.png") > 0
        scores = foreground_scores(_predict(model, image) > 0.5, truth)
        ious.append(scores["iou"])
        rows.append({"slice": f"slice{i:02d}", "iou": scores["iou"], "dice": scores["dice"],
                     "otsu_iou": _otsu_iou(image, truth)})
    card = json.loads(model.with_suffix(".json").read_text())
    return {"settings": " ".join(settings), "wall_s": wall, "training_s": card["training"]["training_time_s"],
            "epochs_run": card["training"]["epochs_run"], "stop_reason": card["training"]["stop_reason"],
            "mean_iou": float(np.mean(ious)), "rows": rows, "target": ">= 0.85 mean foreground IoU"}


def _downscaled_spheroids(folder: Path, names: list[str], scale: int) -> Path:
    """Write spheroid pairs downscaled `scale` times (1: as they are; side-by-side layout) into `folder`."""
    import tifffile
    from skimage.transform import downscale_local_mean

    folder.mkdir(parents=True)
    for name in names:
        image = tifffile.imread(DATA / "spheroids" / f"{name}.tif").astype(np.float32)
        mask = tifffile.imread(DATA / "spheroids" / f"{name}_mask.tif").astype(np.float32)
        factors = (scale, scale)
        tifffile.imwrite(folder / f"{name}.tif", downscale_local_mean(image, factors).astype(np.float32))
        tifffile.imwrite(folder / f"{name}_mask.tif", (downscale_local_mean(mask, factors) >= 0.5).astype(np.uint8))
    return folder


def _spheroid_iou(model: Path, name: str, *, scale: int) -> dict:
    """IoU on one full-resolution spheroid image (predicted at 1/scale, upsampled)."""
    import tifffile
    from skimage.transform import downscale_local_mean, resize

    from spheroseg.training.evaluate import foreground_scores

    image = tifffile.imread(DATA / "spheroids" / f"{name}.tif")
    truth = tifffile.imread(DATA / "spheroids" / f"{name}_mask.tif") > 0
    small = downscale_local_mean(image.astype(np.float32), (scale, scale))
    probability = resize(_predict(model, small), image.shape, order=1)
    scores = foreground_scores(probability > 0.5, truth)
    return {"image": name, "iou": scores["iou"], "dice": scores["dice"], "otsu_iou": _otsu_iou(image, truth)}


def bench_spheroids(scratch: Path, *, finetune: bool = False, intensity: str = "mild", scale: int = 1,
                    seed: int = 0) -> dict:
    """Train on spheroids 1, 2, 5 (both days); IoU on spheroid 9 day 0 and day 2.

    `scale` downscales the images for training and prediction (1: full resolution, as the
    pipeline would train and predict; IoU is always measured at full resolution).
    With `finetune`, start from models/default.pt (fewer epochs, lower learning rate).
    `intensity` is the ``--intensity-augment`` level: these masks were made by thresholding
    the fluorescence, so strong contrast and gamma augmentation contradicts them (``full`` is
    run as the side-by-side comparison). `seed` is the training seed (other seeds show the spread).
    """
    names = [f"spheroid{n}_day{d}" for n in (1, 2, 5) for d in (0, 2)]
    annotations = _downscaled_spheroids(scratch / "spheroids", names, scale)
    settings = ["--epochs", "20", "--steps-per-epoch", "16", "--batch-size", "4", "--patch-size", "256",
                "--intensity-augment", intensity,
                "--val-fraction", "0", "--max-minutes", "14.5", "--seed", str(seed), "--no-progress"]
    if finetune:
        settings = ["--init", "models/default.pt", "--epochs", "16", "--learning-rate", "1e-3", *settings[2:]]
    model = scratch / "spheroids.pt"
    wall = _train(annotations, model, settings)
    rows = [_spheroid_iou(model, f"spheroid9_day{d}", scale=scale) for d in (0, 2)]
    card = json.loads(model.with_suffix(".json").read_text())
    resolution = f" (images downscaled {scale}x)" if scale > 1 else " (full resolution, 1920x1440)"
    return {"settings": " ".join(settings) + resolution, "wall_s": wall,
            "training_s": card["training"]["training_time_s"], "epochs_run": card["training"]["epochs_run"],
            "stop_reason": card["training"]["stop_reason"], "rows": rows,
            "target": ">= 0.90 IoU on each of spheroid9 day 0 and day 2"}


def _demo_position_errors(model: Path, folder: Path, name: str, pixel_size_um: float) -> list[dict]:
    """Per-frame segmented area vs the analytic truth for one demo position."""
    import pandas as pd
    import tifffile

    from spheroseg.segmentation import SegmentationOptions, segment_frame
    from spheroseg.training.evaluate import foreground_scores

    images = tifffile.imread(folder / f"{name}.ome.tif")
    truth_masks = tifffile.imread(folder / "ground_truth" / f"{name}_masks.tif")
    truth = pd.read_csv(folder / "ground_truth" / f"{name}.csv")
    options = SegmentationOptions(threshold=0.5, min_area_px=2000 / pixel_size_um**2, fill_holes=True)
    rows = []
    for t, image in enumerate(images):
        labels, _ = segment_frame(_predict(model, image), options)
        area = float((labels > 0).sum()) * pixel_size_um**2
        expected = float(truth.loc[truth["timepoint"] == t, "area_um2"].sum())
        iou = foreground_scores(labels > 0, truth_masks[t] > 0)["iou"]
        rows.append({"position": name, "timepoint": t, "area_um2": area, "truth_area_um2": expected,
                     "relative_error": area / expected - 1.0, "iou": iou})
    return rows


def bench_default(scratch: Path, model: Path = ROOT / "models" / "default.pt") -> dict:
    """The shipped default model on the demo experiment (config defaults) and on real spheroids."""
    from spheroseg.synthetic import write_demo_experiment

    positions = {"pos0": 1, "pos1": 2}
    write_demo_experiment(scratch / "demo", positions=positions, n_timepoints=8, seed=0, pixel_size_um=2.0)
    rows = [row for name in positions for row in _demo_position_errors(model, scratch / "demo", name, 2.0)]
    last = [row for row in rows if row["timepoint"] == 7]
    real = []
    if (DATA / "spheroids").is_dir():
        real = [_spheroid_iou(model, f"spheroid{n}_day{d}", scale=SPHEROID_SCALE) for n in (1, 2, 5, 9) for d in (0, 2)]
    return {"demo_rows": rows, "demo_final_max_abs_error": max(abs(r["relative_error"]) for r in last),
            "demo_max_abs_error": max(abs(r["relative_error"]) for r in rows), "real_rows": real,
            "target": "demo final-timepoint area within 3% of ground truth"}


def _table(rows: list[dict], columns: list[str]) -> list[str]:
    """Markdown table of `columns` (floats to 4 decimals)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(f"{row[c]:.4f}" if isinstance(row[c], float) else str(row[c])
                                       for c in columns) + " |")
    return lines


def render(results: dict) -> str:
    """The results page from all stored sections."""
    lines = ["# Training benchmarks", "", "Written by `benchmarks/train_benchmark.py` (do not edit by hand).", ""]
    for key, title in (("isbi", "ISBI 2012: train slice00-24, test slice25-29"),
                       ("spheroids", "Spheroids: train 1, 2, 5; test 9"),
                       ("spheroids-seed1", "Spheroids, training seed 1 (spread): train 1, 2, 5; test 9"),
                       ("spheroids-seed2", "Spheroids, training seed 2 (spread): train 1, 2, 5; test 9"),
                       ("spheroids-full-intensity",
                        "Spheroids with full intensity augmentation (comparison): train 1, 2, 5; test 9"),
                       ("spheroids-finetune", "Spheroids, fine-tuning the default model: train 1, 2, 5; test 9"),
                       ("default", "Default model (models/default.pt)")):
        if key not in results:
            continue
        section = results[key]
        lines += [f"## {title}", "", f"Run {section['date']} on {section['machine']}.", "",
                  f"Target: {section['target']}.", ""]
        if key == "isbi":
            lines += [f"Mean foreground IoU: **{section['mean_iou']:.4f}** "
                      f"(Otsu on the same slices: {np.mean([r['otsu_iou'] for r in section['rows']]):.4f})."]
        if key != "default":
            lines += [f"Training time {section['training_s']:.0f} s ({section['epochs_run']} epochs, "
                      f"{section['stop_reason']}); command wall time {section['wall_s']:.0f} s.", "",
                      f"Settings: `spheroseg train {section['settings']}`", ""]
            lines += _table(section["rows"], list(section["rows"][0]))
        else:
            lines += [f"Largest final-timepoint area error: **{100 * section['demo_final_max_abs_error']:.2f}%**; "
                      f"largest over all frames: {100 * section['demo_max_abs_error']:.2f}% (threshold 0.5, "
                      f"holes filled, objects < 2000 um2 removed, as the demo config).", ""]
            lines += _table(section["demo_rows"], list(section["demo_rows"][0]))
            if section["real_rows"]:
                lines += ["", f"Real spheroids (not trained on; images downscaled {SPHEROID_SCALE}x):", ""]
                lines += _table(section["real_rows"], list(section["real_rows"][0]))
        lines.append("")
    return "\n".join(lines)


SECTIONS = {"isbi": (bench_isbi, "isbi2012"), "spheroids": (bench_spheroids, "spheroids"),
            "spheroids-seed1": (lambda scratch: bench_spheroids(scratch, seed=1), "spheroids"),
            "spheroids-seed2": (lambda scratch: bench_spheroids(scratch, seed=2), "spheroids"),
            "spheroids-full-intensity": (lambda scratch: bench_spheroids(scratch, intensity="full"), "spheroids"),
            "spheroids-finetune": (lambda scratch: bench_spheroids(scratch, finetune=True), "spheroids"),
            "default": (bench_default, None)}


def main(argv: list[str] | None = None) -> int:
    """Run the chosen sections, store their figures and rewrite the results page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--default-model", type=Path, help="check this model instead of models/default.pt "
                        "(figures are printed, not stored)")
    args = parser.parse_args(argv)
    if args.default_model is not None:
        with tempfile.TemporaryDirectory() as scratch:
            print(json.dumps(bench_default(Path(scratch), args.default_model), indent=1))
        return 0
    from spheroseg.atomic import write_text

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    results = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.is_file() else {}
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, CPU"
    for name in args.only:
        function, folder = SECTIONS[name]
        if folder is not None and not (DATA / folder).is_dir():
            print(f"skipping {name}: {DATA / folder} is absent", file=sys.stderr)
            continue
        scratch = Path(tempfile.mkdtemp(prefix=f"spheroseg-bench-{name}-"))
        try:
            section = function(scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        section.update(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), machine=machine)
        results[name] = section
        write_text(RESULTS_JSON, json.dumps(results, indent=1) + "\n")
        write_text(RESULTS_MD, render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
