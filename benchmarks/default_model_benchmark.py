"""The default model's and the spheroid model's recipes (models/default.pt, models/spheroids.pt) on real and
synthetic data, the synthetic model on the same test data, and the default model's speed against the previous
default.

Usage (from the repository root, on a quiet machine; sections run one after the other)::

    nice python benchmarks/default_model_benchmark.py --only fold1 fold2 fold5 fold9
    nice python benchmarks/default_model_benchmark.py --only shipped speed
    nice python benchmarks/default_model_benchmark.py --only gpu-folds shipped default speed --gpu-runs DIR [DIR ...]

Each section stores its figures in ``benchmarks/default_model_results.json``; the script then
rewrites ``benchmarks/default_model_results.md`` from all stored sections. The spheroid data
are read in place from ``../shared/data/spheroids`` (a fold folder of symbolic links in a
temporary folder selects three of the four spheroids).

- ``fold<N>`` (N in 1, 2, 5, 9): leave-one-spheroid-out with the exact default-model recipe
  (:data:`RECIPE`): train on the other three spheroids (day 0 and day 2) plus the synthetic
  frames, then test on spheroid N, day 0 and day 2, predicted as ``predict`` with physical
  rescaling would (resampled from 0.75488 to the model's 2 um/px, probabilities resampled back
  and cut at 0.5, IoU and area at full resolution), once as recorded and once inverted
  (``255 - pixel``); Otsu's threshold as the reference; and on synthetic test frames, objects
  brighter than the background (light-on-dark) and the same frames negated (dark-on-light).
- ``ablation-invert``: the fold-9 split with the alternative answer to polarity: no automatic
  polarity step (``--polarity bright``), random inversion of half the training patches
  (``--invert-probability 0.5``) instead.
- ``shipped``, ``default``, ``synthetic``: ``models/spheroids.pt``, ``models/default.pt`` and
  ``models/synthetic.pt`` on the synthetic test frames, on the demo experiment (area after the
  pipeline's segmentation against the analytic truth) and on the spheroids (training data of
  the first two, for information); the validation figures are copied into the first two cards.
- ``gpu-folds``: the recipe variants of ``benchmarks/default_model_gpu.py`` (trained on a CUDA
  machine, one folder per variant under each ``--gpu-runs`` folder): each fold model scored on
  its held-out spheroid as above, the all-data model on the demo and the synthetic test frames.
  ``models/spheroids.pt`` is the all-data model of :data:`SHIPPED_VARIANT`, ``models/default.pt``
  that of :data:`DEFAULT_VARIANT` (its second stage, ``benchmarks/default_model_finetune.py``);
  the ``shipped`` and ``default`` sections then write their validation figures and
  :data:`SPHEROID_CARD_DATA` / :data:`DEFAULT_CARD_DATA` into the cards.
- ``speed``: CPU ``predict_tiles`` time per 2048 x 2048 frame of ``models/default.pt`` against
  the previous default (``git show <PREVIOUS_DEFAULT>:models/default.pt``), alternating them in one
  process (ABBA), with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inference_benchmark import make_image  # noqa: E402  (the same realistic frames)
from default_model_gpu import SPHEROID_NUMBERS, SPHEROID_PIXEL_SIZE_UM  # noqa: E402
from default_model_gpu import fold_folder as gpu_fold_folder  # noqa: E402
from train_benchmark import _table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPHEROIDS = ROOT.parent / "shared" / "data" / "spheroids"
RESULTS_JSON = ROOT / "benchmarks" / "default_model_results.json"
RESULTS_MD = ROOT / "benchmarks" / "default_model_results.md"
DEFAULT_MODEL = ROOT / "models" / "default.pt"
SPHEROID_MODEL = ROOT / "models" / "spheroids.pt"
SYNTHETIC_MODEL = ROOT / "models" / "synthetic.pt"  # the default until 2026-11-28 (synthetic training only)
SYNTHETIC_TEST_SEED = 20241
SYNTHETIC_TEST_PER_MODALITY = 6
#: The recipe before the demo frames were added (folds 1, 2, 5, 9 of the results page were run with it):
#: ``spheroseg train --annotations <spheroid folder> <SINGLE_SOURCE_RECIPE> --output <model>``, the
#: spheroids resampled from their assumed 0.75488 um/px to the model's 2 um/px, plus synthetic frames.
SINGLE_SOURCE_RECIPE = [
    "--annotation-pixel-size-um", str(SPHEROID_PIXEL_SIZE_UM), "--pixel-size-um", "2.0",
    "--synthetic", "40", "--synthetic-size", "256",
    "--synthetic-modalities", "fluorescence", "invasive", "brightfield", "phase",
    "--normalization", "robust", "--intensity-augment", "mild",
    "--epochs", "60", "--steps-per-epoch", "16", "--batch-size", "4", "--patch-size", "256",
    "--val-fraction", "0", "--seed", "0", "--no-progress",
]
#: 20 frames of the demo's own rendering (:func:`spheroseg.synthetic.write_training_set` without
#: modalities: outlines are the exact ellipses, debris is background), at 2 um/px. Without them the
#: model drew the demo's outlines 4-8 % too wide (the demo's 3 % bound failed): the spheroid masks and
#: the modality frames count every in-focus cell next to a body as foreground.
DEMO_FRAMES = {"n_images": 20, "seed": 7}
#: Tried as the default model's recipe (``--annotations <spheroid folder> <demo frames> <DEMO_FRAMES_RECIPE>``):
#: the demo still failed its 3 % bound through the workflow (pos1 +4.3 %) and held-out spheroid 9 lost
#: 0.036 IoU on day 2, so the spheroid model keeps :data:`RECIPE` and the default stays the synthetic one.
DEMO_FRAMES_RECIPE = ["--annotation-pixel-size-um", str(SPHEROID_PIXEL_SIZE_UM), "2.0", *SINGLE_SOURCE_RECIPE[2:]]
#: The spheroid model's recipe: ``spheroseg train --annotations <spheroid folder> <RECIPE>``.
RECIPE = SINGLE_SOURCE_RECIPE
#: A variant tried for images without a pixel size (predicted at native scale): the spheroid folder
#: twice, resampled and as it is (declared 2 um/px), each source a third of the patches. On spheroid 9
#: it raised day-2 IoU at native scale (0.78 -> 0.86) but lowered it at the model's scale (0.924 ->
#: 0.899, area -8 %) and on synthetic fluorescence (0.98 -> 0.92), so the default keeps RECIPE.
_SINGLE = SINGLE_SOURCE_RECIPE
TWO_SCALE_RECIPE = [
    "--annotation-pixel-size-um", str(SPHEROID_PIXEL_SIZE_UM), "2.0", *_SINGLE[2:_SINGLE.index("--val-fraction")],
    "--sampling", "source", *_SINGLE[_SINGLE.index("--val-fraction"):],
]
#: The card's ``data`` entry for the shipped model (added by the ``train-shipped`` section).
CARD_DATA = {
    "sources": [
        {"data": "../shared/data/spheroids: tumour spheroids 1, 2, 5 and 9 at day 0 and day 2 (8 images, "
                 "1920 x 1440, 8-bit fluorescence; masks of core plus invading cells, thresholded and corrected "
                 "by hand by the original authors)",
         "origin": "github.com/rmungai/SpheroidInvasionAnalysis (R. W. Mungai, Billiar Lab, Worcester "
                   "Polytechnic Institute), '3D dynamic' set", "licence": "MIT",
         "pixel_size_um": SPHEROID_PIXEL_SIZE_UM, "pixel_size_note": "assumed: the files carry no pixel size",
         "used": "resampled to 2.0 um/px (factor 0.377)"},
        {"data": "40 synthetic 256 x 256 frames, spheroseg.synthetic.training_frame (10 each of fluorescence, "
                 "invasive, brightfield, phase; random polarity, gain, offset, bit depth)",
         "origin": "this project", "licence": "MIT", "pixel_size_um": 2.0},
        {"data": "20 synthetic 256 x 256 frames of the demo's rendering, spheroseg.synthetic.write_training_set("
                 "n_images=20, seed=7) (exact ellipse outlines, debris as background)",
         "origin": "this project", "licence": "MIT", "pixel_size_um": 2.0},
    ],
    "training_pixel_size_um": 2.0,
    "assumed_scale": (
        f"{SPHEROID_PIXEL_SIZE_UM} um/px for the spheroid images: their original names end in _10x_, and the "
        "source's analysis script (Quant_imageset.m) gives its Keyence BZ-X's scale, 1.88721 um/px at 4x and "
        "0.75488 um/px at 10x; shed nuclei are 10-15 px across (8-11 um at 0.755 um/px) and day-0 spheroids "
        "150-280 px (115-210 um), as expected at 10x."),
    "native_scale": (
        "image files without a pixel size are predicted at their native scale: set ingest.pixel_size_um so "
        "that predict resamples them to 2 um/px (spheroid 9, day 2, held out: IoU 0.924 resampled, 0.78 at "
        "its native 0.755 um/px; benchmarks/default_model_results.md)"),
}
#: The card's ``data`` entry for models/spheroids.pt (the all-data model of :data:`SHIPPED_VARIANT`).
SPHEROID_CARD_DATA = {
    "sources": [
        CARD_DATA["sources"][0],
        {"data": "140 synthetic 256 x 256 frames, spheroseg.synthetic.write_training_set(n_images=140, seed=0, "
                 "modalities=(demo, demo, demo, fluorescence, invasive, brightfield, phase)): 60 in the demo's "
                 "rendering (exact ellipse outlines, debris as background), 20 each of fluorescence, invasive, "
                 "bright field and phase contrast (random polarity, gain, offset, bit depth; every in-focus cell "
                 "foreground)", "origin": "this project", "licence": "MIT", "pixel_size_um": 2.0},
    ],
    "sampling": "--sampling source: the spheroids and the synthetic frames each half of the patches",
    "training_pixel_size_um": 2.0,
    "assumed_scale": CARD_DATA["assumed_scale"],
    "native_scale": (
        "image files without a pixel size are predicted at their native scale: set ingest.pixel_size_um so "
        "that predict resamples them to 2 um/px (held out, day 2: IoU 0.916-0.950 resampled, 0.721-0.906 at "
        "the native 0.755 um/px; benchmarks/default_model_results.md)"),
    "trained_on": "one NVIDIA H200 (CUDA, fp16 autocast), benchmarks/default_model_gpu.py; the same command "
                  "trains on a CPU (--device cpu), with other weights (not bit-identical)",
}
#: The card's ``data`` entry for models/default.pt (the all-data model of :data:`DEFAULT_VARIANT`).
DEFAULT_CARD_DATA = {
    "sources": [
        *SPHEROID_CARD_DATA["sources"],
        {"data": "120 synthetic 256 x 256 frames of the demo's rendering seen through coarse cameras, "
                 "benchmarks/default_model_finetune.py coarse_frames: block means of 2 or 4 px (4 or 8 um pixels) "
                 "resampled back to 2 um/px as predict resamples a coarse image (cubic); exact masks",
         "origin": "this project", "licence": "MIT", "pixel_size_um": 2.0},
    ],
    "stages": [
        "1: models/spheroids.pt's recipe (spheroids + the 140 synthetic frames, --sampling source, 160 epochs) "
        "on one NVIDIA H200, benchmarks/default_model_gpu.py variant source-long-demo3",
        "2: --init the stage-1 model, --recipe finetune (learning rate 5e-4, batch-norm statistics frozen), "
        "15 epochs x 15 steps x 8 patches on the CPU, the spheroids, the 140 synthetic frames and the 120 "
        "coarse frames each a third of the patches (--sampling source), benchmarks/default_model_finetune.py",
    ],
    "why_stage_2": (
        "the stage-1 model draws outlines as the spheroid annotators do, a fraction of a pixel outside the "
        "synthetic bodies' exact ellipses: as the default it measured the demo's smallest body 3.06 % too large "
        "(bound 3 %) and bodies imaged at 8 um/px 2.7-3.5 % too large (bound 2 %); stage 2 brings both within "
        "their bounds at a cost of about 0.01 IoU on the held-out spheroids"),
    "training_pixel_size_um": 2.0,
    "assumed_scale": CARD_DATA["assumed_scale"],
    "native_scale": (
        "image files without a pixel size are predicted at their native scale: set ingest.pixel_size_um so "
        "that predict resamples them to 2 um/px"),
}
KEEP_MODELS: Path | None = None  # --keep-models: where fold models are copied for inspection
GPU_RUNS: list[Path] = []  # --gpu-runs: folders of benchmarks/default_model_gpu.py output (unpacked)
#: The recipe variant of benchmarks/default_model_gpu.py whose all-data model ships as models/spheroids.pt.
SHIPPED_VARIANT = "source-long-demo3"
#: Its CPU fine-tuned second stage (benchmarks/default_model_finetune.py), shipped as models/default.pt.
DEFAULT_VARIANT = "source-long-demo3-finetune"
#: The commit of the default model that the speed section compares against (synthetic training).
PREVIOUS_DEFAULT = "4e3d8b1"
TARGETS = {"day0_iou": 0.96, "day2_iou": 0.92, "area_error": 0.05, "inverted_iou_gap": 0.02}


# --- prediction as the pipeline does it ---------------------------------------------------


def load(model_path: Path) -> tuple[torch.jit.ScriptModule, dict]:
    """The TorchScript model (eval, CPU) and its verified card."""
    from spheroseg.modelcard import read_verified_card

    card = read_verified_card(model_path)
    return torch.jit.load(str(model_path), map_location="cpu").eval(), card


def probability_map(model: tuple[torch.jit.ScriptModule, dict], image: np.ndarray,
                    pixel_size_um: float | None) -> np.ndarray:
    """Foreground probability of `image` on its own grid, float32 (Y, X).

    The image is resampled to the card's pixel size (when `pixel_size_um` is given and
    differs), normalised as the card says, predicted by tiles, and the probabilities are
    resampled back (linear), as ``predict`` with physical rescaling does.
    """
    from skimage.transform import resize

    from spheroseg.normalization import normalize_image
    from spheroseg.training.data import resample_pair
    from spheroseg.training.evaluate import predict_logits

    module, card = model
    target = card["input"].get("pixel_size_um")
    data = np.asarray(image)
    if pixel_size_um is not None and target is not None and pixel_size_um != target:
        data = resample_pair(data, None, factor=pixel_size_um / target)[0]
    logits = predict_logits(module, normalize_image(data, card["input"]["normalization"]),
                            divisor=card["spatial_divisor"], tile=512)
    probability = 1.0 / (1.0 + np.exp(-logits))
    if probability.shape != image.shape:
        probability = resize(probability, image.shape, order=1, preserve_range=True)
    return probability.astype(np.float32)


def scores(prediction: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Foreground IoU and relative area error of a boolean prediction."""
    from spheroseg.training.evaluate import foreground_scores

    return {"iou": foreground_scores(prediction, truth)["iou"],
            "area_error": float(prediction.sum()) / float(truth.sum()) - 1.0}


def otsu_iou(image: np.ndarray, truth: np.ndarray) -> float:
    """IoU of Otsu's threshold (bright = foreground), the reference."""
    from skimage.filters import threshold_otsu

    from spheroseg.training.evaluate import foreground_scores

    return foreground_scores(image > threshold_otsu(image), truth)["iou"]


# --- evaluations ---------------------------------------------------------------------------


def spheroid_rows(model_path: Path, numbers: tuple[int, ...]) -> list[dict]:
    """Per image: IoU and area error as recorded, inverted and at native scale; Otsu."""
    import tifffile

    model = load(model_path)
    rows = []
    for number in numbers:
        for day in (0, 2):
            name = f"spheroid{number}_day{day}"
            image = tifffile.imread(SPHEROIDS / f"{name}.tif")
            truth = tifffile.imread(SPHEROIDS / f"{name}_mask.tif") > 0
            plain = scores(probability_map(model, image, SPHEROID_PIXEL_SIZE_UM) > 0.5, truth)
            inverted = scores(probability_map(model, 255 - image, SPHEROID_PIXEL_SIZE_UM) > 0.5, truth)
            native = scores(probability_map(model, image, None) > 0.5, truth)
            rows.append({"image": name, "day": day, "iou": plain["iou"], "area_error": plain["area_error"],
                         "inverted_iou": inverted["iou"], "inverted_area_error": inverted["area_error"],
                         "native_scale_iou": native["iou"], "otsu_iou": otsu_iou(image, truth)})
    return rows


def synthetic_rows(model_path: Path) -> list[dict]:
    """IoU per modality on the synthetic test frames, light-on-dark and the same frames dark-on-light."""
    from spheroseg.synthetic import TRAINING_MODALITIES, training_frame

    model = load(model_path)
    rows = []
    for modality in TRAINING_MODALITIES:
        row: dict = {"modality": modality}
        for polarity, column in (("bright", "light_on_dark_iou"), ("dark", "dark_on_light_iou")):
            ious = []
            for index in range(SYNTHETIC_TEST_PER_MODALITY):
                seed = np.random.SeedSequence([SYNTHETIC_TEST_SEED, TRAINING_MODALITIES.index(modality), index])
                image, truth = training_frame(seed, shape=(256, 256), modality=modality, polarity=polarity)
                ious.append(scores(probability_map(model, image, None) > 0.5, truth)["iou"])
            row[column] = float(np.mean(ious))
        rows.append(row)
    return rows


def demo_rows(model_path: Path, scratch: Path) -> list[dict]:
    """The demo experiment (config defaults): segmented area per frame against the analytic truth."""
    import pandas as pd
    import tifffile

    from spheroseg.segmentation import SegmentationOptions, segment_frame
    from spheroseg.synthetic import write_demo_experiment

    positions = {"pos0": 1, "pos1": 2}
    write_demo_experiment(scratch / "demo", positions=positions, n_timepoints=8, seed=0, pixel_size_um=2.0)
    model = load(model_path)
    options = SegmentationOptions(threshold=0.5, min_area_px=2000 / 2.0**2, fill_holes=True)
    rows = []
    for name in positions:
        images = tifffile.imread(scratch / "demo" / f"{name}.ome.tif")
        truth = pd.read_csv(scratch / "demo" / "ground_truth" / f"{name}.csv")
        for t, image in enumerate(images):
            labels, _ = segment_frame(probability_map(model, image, None), options)
            expected = float(truth.loc[truth["timepoint"] == t, "area_um2"].sum())
            area = float((labels > 0).sum()) * 4.0
            rows.append({"position": name, "timepoint": t, "objects": int(labels.max()),
                         "bodies": int((truth["timepoint"] == t).sum()), "relative_error": area / expected - 1.0})
    return rows


# --- sections ------------------------------------------------------------------------------


def demo_frames(scratch: Path) -> Path:
    """Write :data:`DEMO_FRAMES` into ``scratch/demo-frames`` (images/ + masks/); return the folder."""
    from spheroseg.synthetic import write_training_set

    folder = scratch / "demo-frames"
    write_training_set(folder, **DEMO_FRAMES)
    return folder


def annotation_folders(spheroids: Path, recipe: list[str], scratch: Path) -> list[Path]:
    """The ``--annotations`` of `recipe`: the spheroid folder, then the demo frames (:data:`RECIPE`) or
    the spheroid folder again (:data:`TWO_SCALE_RECIPE`), one folder per ``--annotation-pixel-size-um``."""
    if recipe is DEMO_FRAMES_RECIPE:
        return [spheroids, demo_frames(scratch)]
    sizes = recipe[recipe.index("--annotation-pixel-size-um") + 1:]
    return [spheroids] * next(i for i, value in enumerate(sizes) if value.startswith("--"))


def train(annotations: list[Path], output: Path, recipe: list[str], *, cwd: Path | None = None) -> float:
    """Run ``spheroseg train`` in a child process (as a user would); return its wall time in s."""
    command = [sys.executable, "-c", "import sys; from spheroseg.cli import main; sys.exit(main(sys.argv[1:]))",
               "train", "--annotations", *map(str, annotations), *recipe, "--output", str(output)]
    print("+ spheroseg " + " ".join(command[3:]), flush=True)
    started = time.monotonic()
    subprocess.run(command, check=True, cwd=cwd)
    return time.monotonic() - started


def fold_folder(scratch: Path, held_out: int) -> Path:
    """A folder of symbolic links to the other three spheroids (both days), side-by-side layout."""
    return gpu_fold_folder(SPHEROIDS, scratch, held_out)

def bench_fold(scratch: Path, held_out: int, recipe: list[str] = RECIPE) -> dict:
    """Train on the three other spheroids plus synthetic frames; test on spheroid `held_out`."""
    model = scratch / f"fold{held_out}.pt"
    wall = train(annotation_folders(fold_folder(scratch, held_out), recipe, scratch), model, recipe)
    card = json.loads(model.with_suffix(".json").read_text())
    if KEEP_MODELS is not None:
        KEEP_MODELS.mkdir(parents=True, exist_ok=True)
        suffix = {id(DEMO_FRAMES_RECIPE): "-demo-frames", id(RECIPE): ""}.get(id(recipe), "-variant")
        for path in (model, model.with_suffix(".json")):
            shutil.copy(path, KEEP_MODELS / f"{path.stem}{suffix}{path.suffix}")
    return {"held_out": held_out, "settings": " ".join(recipe), "wall_s": wall,
            "training_s": card["training"]["training_time_s"], "epochs_run": card["training"]["epochs_run"],
            "rows": spheroid_rows(model, (held_out,)), "synthetic": synthetic_rows(model)}


def ablation_recipe() -> list[str]:
    """The recipe with random patch inversion instead of the automatic polarity step."""
    return [*RECIPE, "--polarity", "bright", "--invert-probability", "0.5"]


def bench_shipped(scratch: Path, model: Path = SPHEROID_MODEL) -> dict:
    """The shipped model on synthetic test frames, the demo and (seen in training) the spheroids."""
    card = json.loads(model.with_suffix(".json").read_text())
    return {"sha256": card["sha256"], "synthetic": synthetic_rows(model), "demo": demo_rows(model, scratch),
            "spheroids_seen": spheroid_rows(model, SPHEROID_NUMBERS)}


def _old_model(folder: Path, revision: str) -> Path:
    """The default model (and card) of `revision`, extracted with ``git show``."""
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".pt", ".json"):
        blob = subprocess.run(["git", "-C", str(ROOT), "show", f"{revision}:models/default{suffix}"],
                              check=True, capture_output=True).stdout
        (folder / f"previous{suffix}").write_bytes(blob)
    return folder / "previous.pt"


def bench_speed(scratch: Path, *, revision: str = PREVIOUS_DEFAULT, rounds: int = 2, frames: int = 4) -> dict:
    """CPU predict_tiles seconds per 2048 x 2048 frame, previous and new default, ABBA order."""
    from spheroseg.inference import plan_for_image, predict_tiles
    from spheroseg.tiling import write_plan

    image = scratch / "speed.ome.zarr"
    make_image(image, frames, 2048, pixel_size_um=2.0)
    models = {"previous": _old_model(scratch / "old", revision), "new": DEFAULT_MODEL}
    plans = {}
    for name, model in models.items():
        plans[name] = scratch / f"{name}.plan.json"
        write_plan(plan_for_image(image, model), plans[name])
    times: dict[str, list[float]] = {name: [] for name in models}
    precision: dict[str, str] = {}
    load_before = os.getloadavg()
    for name in ["previous", "new", "new", "previous"] * rounds:
        output = scratch / f"{name}.tiles.zarr"
        summary = predict_tiles(image, plans[name], models[name], output, device="cpu", precision="auto",
                                batch_size=8)
        times[name].append(summary["seconds"] / frames)
        precision[name] = summary["precision"]
        shutil.rmtree(output)
    medians = {name: float(np.median(values)) for name, values in times.items()}
    return {"revision": revision, "frames": frames, "seconds_per_frame": times, "median_s": medians,
            "ratio": medians["new"] / medians["previous"], "precision": precision,
            "load_average_before": load_before, "load_average_after": os.getloadavg(),
            "target": "new / previous <= 1.5"}


def gpu_variants(gpu_runs: list[Path]) -> dict[str, Path]:
    """Variant name -> its folder (fold1 ... fold9, all), from every ``--gpu-runs`` folder."""
    found = {}
    for runs in gpu_runs:
        for folder in sorted(runs.iterdir()):
            if (folder / "all" / "model.pt").is_file():
                found[folder.name] = folder
    if not found:
        raise SystemExit(f"no variant folders (<variant>/all/model.pt) under {gpu_runs}: pass --gpu-runs")
    return found


def bench_gpu_folds(scratch: Path) -> dict:
    """Each variant's fold models on their held-out spheroid; its all-data model on the demo and synthetic frames."""
    variants = {}
    for name, folder in gpu_variants(GPU_RUNS).items():
        cards = {run: json.loads((folder / run / "model.json").read_text()) for run in
                 [*(f"fold{n}" for n in SPHEROID_NUMBERS), "all"]}
        console = (folder / "all" / "console.log").read_text().splitlines()[0]
        settings = console.split(" --annotations ", 1)[1].split(" ", 1)[1].rsplit(" --output ", 1)[0]
        rows = [row for n in SPHEROID_NUMBERS for row in spheroid_rows(folder / f"fold{n}" / "model.pt", (n,))]
        variants[name] = {
            "settings": settings, "rows": rows,
            "training_s": {run: card["training"]["training_time_s"] for run, card in cards.items()},
            "epochs_run": {run: card["training"]["epochs_run"] for run, card in cards.items()},
            "device": cards["all"]["training"]["config"]["device"],
            "all_sha256": cards["all"]["sha256"],
            "demo": demo_rows(folder / "all" / "model.pt", scratch / name),
            "synthetic": synthetic_rows(folder / "all" / "model.pt")}
    return {"variants": variants}


def judged_rows(rows: list[dict]) -> list[dict]:
    """Each held-out image's row (of :func:`spheroid_rows`) with its inverted gap, IoU target and
    pass/fail against :data:`TARGETS`."""
    table = []
    for row in rows:
        target = TARGETS["day0_iou"] if row["day"] == 0 else TARGETS["day2_iou"]
        gap = abs(row["inverted_iou"] - row["iou"])
        passed = (row["iou"] >= target and abs(row["area_error"]) <= TARGETS["area_error"]
                  and gap <= TARGETS["inverted_iou_gap"])
        table.append({**{k: v for k, v in row.items() if k != "day"}, "inverted_gap": gap,
                      "target_iou": target, "pass": "yes" if passed else "NO"})
    return table


def _render_gpu(results: dict) -> list[str]:
    """The spheroid model's recipe variants (section ``gpu-folds``)."""
    section = results.get("gpu-folds")
    if not section:
        return []
    lines = ["## The spheroid model's recipe: leave one spheroid out, variants trained on a GPU", "",
             "Trained by `benchmarks/default_model_gpu.py` on one CUDA machine (all runs of a round side by side, "
             "one CPU thread each), scored here on the CPU as above (held-out spheroid resampled to 2 um/px, "
             f"cut at 0.5; inverted = 255 - pixel; targets day 0 >= {TARGETS['day0_iou']}, day 2 >= "
             f"{TARGETS['day2_iou']}, |area error| <= {100 * TARGETS['area_error']:.0f} %, inverted within "
             f"{TARGETS['inverted_iou_gap']}). `models/spheroids.pt` is the all-data model of `{SHIPPED_VARIANT}`; "
             f"`models/default.pt` that of `{DEFAULT_VARIANT}`, its second stage (fine-tuned on the CPU by "
             "`benchmarks/default_model_finetune.py`, each fold from the same fold's stage-1 model). "
             f"Scored {section['date']} (load {section['load']}).", ""]
    for name, variant in section["variants"].items():
        demo = variant["demo"]
        times = ", ".join(f"{run} {seconds:.0f} s" for run, seconds in variant["training_s"].items())
        shipped_as = {SHIPPED_VARIANT: " (shipped as models/spheroids.pt)",
                      DEFAULT_VARIANT: " (shipped as models/default.pt)"}.get(name, "")
        lines += [f"### `{name}`{shipped_as}", "",
                  f"`spheroseg train --annotations <spheroids> {variant['settings']}` "
                  f"(device {variant['device']}; training {times}).", ""]
        lines += _table(judged_rows(variant["rows"]), ["image", "iou", "area_error", "inverted_iou",
                                                          "inverted_gap", "native_scale_iou", "otsu_iou",
                                                          "pass"]) + [""]
        lines += [f"All-data model (SHA-256 {variant['all_sha256'][:12]}): demo largest |area error| "
                  f"{100 * max(abs(r['relative_error']) for r in demo):.2f} % (bound 3 %), objects per frame equal "
                  f"to bodies: {all(r['objects'] == r['bodies'] for r in demo)}; synthetic test frames, mean IoU:", ""]
        lines += _table(variant["synthetic"], ["modality", "light_on_dark_iou", "dark_on_light_iou"]) + [""]
    return lines


# --- results -------------------------------------------------------------------------------


def fold_table(results: dict, suffix: str = "") -> list[dict]:
    """One row per held-out image over all folds (sections ``fold<N><suffix>``), pass/fail against the targets."""
    return [{"fold": key, **row} for key in (f"fold{n}{suffix}" for n in SPHEROID_NUMBERS)
            for row in judged_rows(results.get(key, {}).get("rows", []))]


def shipped_validation(results: dict, variant_name: str = SHIPPED_VARIANT, key: str = "shipped") -> dict:
    """Per-domain figures for a shipped model's card: its recipe's leave-one-out folds (section
    ``gpu-folds``, variant `variant_name`), the synthetic test frames and the demo (section `key`)."""
    variant = results["gpu-folds"]["variants"][variant_name]
    shipped = results[key]
    summary: dict = {"source": "benchmarks/default_model_results.md", "recipe_variant": variant_name}
    for day in (0, 2):
        chosen = [r for r in variant["rows"] if r["day"] == day]
        summary[f"spheroid_day{day}_leave_one_out"] = {
            "iou_mean": float(np.mean([r["iou"] for r in chosen])), "iou_min": min(r["iou"] for r in chosen),
            "area_error_max_abs": max(abs(r["area_error"]) for r in chosen),
            "inverted_iou_min": min(r["inverted_iou"] for r in chosen), "folds": len(chosen)}
    for polarity in ("light_on_dark", "dark_on_light"):
        summary[f"synthetic_{polarity}_iou"] = {r["modality"]: r[f"{polarity}_iou"] for r in shipped["synthetic"]}
    summary["demo_area_error_max_abs"] = max(abs(r["relative_error"]) for r in shipped["demo"])
    return summary


def write_shipped_card_validation(results: dict) -> None:
    """Copy :func:`shipped_validation` and the data entry into the cards of models/spheroids.pt
    (:data:`SPHEROID_CARD_DATA`) and models/default.pt (:data:`DEFAULT_CARD_DATA`), each once its
    section (``shipped``, ``default``) has scored the model file that is there now."""
    from spheroseg.modelcard import read_verified_card, write_card

    for model, variant, key, data in ((SPHEROID_MODEL, SHIPPED_VARIANT, "shipped", SPHEROID_CARD_DATA),
                                      (DEFAULT_MODEL, DEFAULT_VARIANT, "default", DEFAULT_CARD_DATA)):
        card = read_verified_card(model)
        if (results.get(key, {}).get("sha256") != card["sha256"]
                or variant not in results.get("gpu-folds", {}).get("variants", {})):
            continue
        write_card(dict(card, validation=shipped_validation(results, variant, key), data=data), model)


def _render_folds(results: dict, suffix: str = "") -> list[str]:
    """The leave-one-spheroid-out table and the per-fold synthetic figures (sections ``fold<N><suffix>``)."""
    rows = fold_table(results, suffix)
    keys = [f"fold{n}{suffix}" for n in SPHEROID_NUMBERS if f"fold{n}{suffix}" in results]
    if not rows:
        return []
    title = ("a recipe with 20 demo frames added (tried, not shipped)" if suffix else
             "the previous spheroid model's recipe (models/spheroids.pt until 2026-11-27, CPU)")
    lines = [f"## Leave one spheroid out, {title}", "",
             f"Recipe: `spheroseg train --annotations <three spheroids>"
             f"{' <demo frames>' if suffix else ''} {results[keys[0]]['settings']}`.", "",
             "Targets per image: IoU >= 0.96 (day 0), >= 0.92 (day 2); |area error| <= 5 %; inverted image "
             "(255 - pixel) within 0.02 IoU. Prediction at the model's 2 um/px (images resampled from "
             f"{SPHEROID_PIXEL_SIZE_UM} um/px, probabilities resampled back, cut at 0.5); `native_scale_iou`: "
             "the image fed as it is (no pixel size known), for information; Otsu: bright = foreground.", ""]
    columns = ["fold", "image", "iou", "area_error", "inverted_iou", "inverted_gap", "native_scale_iou",
               "otsu_iou", "pass"]
    lines += _table(rows, columns) + [""]
    times = [f"{key} {results[key]['training_s']:.0f} s ({results[key]['date']}, load {results[key]['load']})"
             for key in keys]
    synthetic = [{"fold": key, **row} for key in keys for row in results[key]["synthetic"]]
    lines += ["Training time per fold: " + "; ".join(times) + ".", "",
              "Synthetic test frames (6 per modality; the same frames light-on-dark and negated), mean IoU:", ""]
    return lines + _table(synthetic, ["fold", "modality", "light_on_dark_iou", "dark_on_light_iou"]) + [""]


def _render_model(section: dict, title: str, seen: str) -> list[str]:
    """One shipped model on the synthetic test frames, the demo and the spheroids."""
    demo = section["demo"]
    lines = [f"## {title}", "", f"SHA-256 {section['sha256']} ({section['date']}, load {section['load']}).", "",
             "Synthetic test frames (never trained on), mean IoU:", ""]
    lines += _table(section["synthetic"], ["modality", "light_on_dark_iou", "dark_on_light_iou"]) + [""]
    lines += [f"Demo experiment (config defaults; threshold 0.5, holes filled, objects < 2000 um2 removed): "
              f"largest |area error| {100 * max(abs(r['relative_error']) for r in demo):.2f} %, "
              f"objects per frame equal to bodies: {all(r['objects'] == r['bodies'] for r in demo)}.", "", seen, ""]
    return lines + _table(section["spheroids_seen"], ["image", "iou", "area_error", "inverted_iou",
                                                       "native_scale_iou", "otsu_iou"]) + [""]


def _render_other(results: dict) -> list[str]:
    """Ablation, shipped model and speed sections."""
    lines: list[str] = []
    if "fold9-two-scales" in results:
        section = results["fold9-two-scales"]
        lines += ["## Variant: the spheroids also at their native scale (spheroid 9 held out)", "",
                  "Files without a pixel size (as the spheroid files) are predicted at their native scale, where "
                  "the default recipe loses invading cells on day 2 (`native_scale_iou`). Giving the spheroid "
                  "folder twice, resampled and as it is (declared 2 um/px), each source a third of the patches "
                  "(`--sampling source`), helps there but costs accuracy at the model's scale and on synthetic "
                  "frames, so the default keeps the recipe above.", "",
                  f"Settings: `{section['settings']}` ({section['date']}, load {section['load']}; training "
                  f"{section['training_s']:.0f} s).", ""]
        lines += _table(section["rows"], ["image", "iou", "area_error", "inverted_iou", "native_scale_iou",
                                          "otsu_iou"]) + [""]
        lines += _table(section["synthetic"], ["modality", "light_on_dark_iou", "dark_on_light_iou"]) + [""]
    if "train-shipped" in results:
        section = results["train-shipped"]
        lines += ["## Training the previous spheroid model (replaced 2026-11-27 by the GPU recipe above)", "",
                  f"`spheroseg train --annotations ../shared/data/spheroids "
                  f"{section['settings']} --output models/spheroids.pt`: {section['training_s']:.0f} s of training "
                  f"({section['date']}, load {section['load']}); {section['size_bytes'] / 1e6:.1f} MB; "
                  f"SHA-256 {section['sha256']}.", ""]
    if "ablation-invert" in results:
        section = results["ablation-invert"]
        lines += ["## Polarity by augmentation instead (ablation, spheroid 9 held out)", "",
                  f"Settings: `{section['settings']}` ({section['date']}, load {section['load']}).", ""]
        lines += _table(section["rows"], ["image", "iou", "area_error", "inverted_iou", "native_scale_iou",
                                          "otsu_iou"]) + [""]
        lines += _table(section["synthetic"], ["modality", "light_on_dark_iou", "dark_on_light_iou"]) + [""]
    for key, title, seen in (("default", "Default model (models/default.pt: the spheroid model fine-tuned "
                              "with coarse-camera demo frames)", "Spheroids (all were training data; for "
                              "information):"),
                             ("shipped", "Spheroid model (models/spheroids.pt)",
                              "Spheroids (all were training data; for information):"),
                             ("synthetic", "Synthetic model (models/synthetic.pt, the default until 2026-11-28: "
                              "synthetic training, robust normalisation)", "Spheroids (never trained on):")):
        if key in results:
            lines += _render_model(results[key], title, seen)
    if "speed" in results:
        section = results["speed"]
        lines += ["## CPU predict time per 2048 x 2048 frame", "",
                  f"`predict_tiles` (device cpu, precision auto, batch 8) on 4 frames, ABBA order in one process; "
                  f"previous = `models/default.pt` at `{section['revision']}` ({section['date']}, load average "
                  f"{section['load_average_before'][0]:.2f} before, {section['load_average_after'][0]:.2f} after).", "",
                  "| model | seconds per frame (each run) | median | precision |", "|---|---|---|---|"]
        for name in ("previous", "new"):
            runs = ", ".join(f"{v:.2f}" for v in section["seconds_per_frame"][name])
            lines.append(f"| {name} | {runs} | {section['median_s'][name]:.2f} | {section['precision'][name]} |")
        lines += ["", f"Ratio new / previous: **{section['ratio']:.2f}** (target <= 1.5).", ""]
    return lines


def render(results: dict) -> str:
    """The results page from all stored sections."""
    lines = ["# Default model benchmarks", "",
             "Written by `benchmarks/default_model_benchmark.py` (do not edit by hand).", ""]
    return "\n".join(lines + _render_gpu(results) + _render_folds(results, "-demo-frames") + _render_folds(results)
                     + _render_other(results))


SECTIONS = {
    **{f"fold{n}": (lambda scratch, n=n: bench_fold(scratch, n, SINGLE_SOURCE_RECIPE)) for n in SPHEROID_NUMBERS},
    **{f"fold{n}-demo-frames": (lambda scratch, n=n: bench_fold(scratch, n, DEMO_FRAMES_RECIPE)) for n in SPHEROID_NUMBERS},
    "ablation-invert": lambda scratch: bench_fold(scratch, 9, ablation_recipe()),
    "fold9-two-scales": lambda scratch: bench_fold(scratch, 9, TWO_SCALE_RECIPE),
    "shipped": bench_shipped,
    "default": lambda scratch: bench_shipped(scratch, DEFAULT_MODEL),
    "synthetic": lambda scratch: bench_shipped(scratch, SYNTHETIC_MODEL),
    "speed": bench_speed,
    "gpu-folds": bench_gpu_folds,
}


def main(argv: list[str] | None = None) -> int:
    """Run the chosen sections, store their figures and rewrite the results page."""
    from spheroseg.atomic import write_text

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), required=True)
    parser.add_argument("--keep-models", type=Path, help="copy the fold models (and cards) into this folder")
    parser.add_argument("--gpu-runs", type=Path, nargs="+", default=[],
                        help="gpu-folds: output folders of benchmarks/default_model_gpu.py, tar files unpacked")
    args = parser.parse_args(argv)
    global KEEP_MODELS, GPU_RUNS
    KEEP_MODELS, GPU_RUNS = args.keep_models, args.gpu_runs
    if not SPHEROIDS.is_dir():
        print(f"{SPHEROIDS} is absent: the spheroid sections need it", file=sys.stderr)
        return 1
    results = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.is_file() else {}
    for name in args.only:
        scratch = Path(tempfile.mkdtemp(prefix=f"spheroseg-default-{name}-"))
        load_before = os.getloadavg()[0]
        try:
            section = SECTIONS[name](scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        section.update(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                       load=f"{load_before:.1f}-{os.getloadavg()[0]:.1f}",
                       machine=f"{platform.machine()}, {torch.get_num_threads()} torch threads, CPU")
        results[name] = section
        write_text(RESULTS_JSON, json.dumps(results, indent=1) + "\n")
        write_text(RESULTS_MD, render(results))
        if name in ("shipped", "default", "gpu-folds"):
            write_shipped_card_validation(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
