"""Where the leave-one-spheroid-out models go wrong: error components per held-out image.

Usage (from the repository root, with the unpacked output of ``benchmarks/default_model_gpu.py``)::

    nice python benchmarks/fold_errors.py --gpu-runs DIR [DIR ...]

For every recipe variant under the ``--gpu-runs`` folders, each fold model predicts its
held-out spheroid (day 0 and day 2) exactly as ``default_model_benchmark.py`` scores it
(resampled to the model's 2 um/px and back, cut at 0.5), and the errors are split into
connected components: false positives (predicted, not annotated) and false negatives
(annotated, not predicted). The page reports, per image, the largest false-positive
component (its size, its share of all false-positive pixels, its median brightness against
the annotated pixels' median, and the share of its rim that lies on the annotation), and the IoU the image
would have if that one component were background: a diagnosis of a failing fold, not a
score (the scored IoU is the first column). The all-data model on the same image gives the
ceiling of the recipe there (it trained on that image).

Writes ``benchmarks/fold_errors_results.md``. Reads ``../shared/data/spheroids`` in place.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from spheroseg.training.evaluate import foreground_scores

sys.path.insert(0, str(Path(__file__).resolve().parent))
from default_model_benchmark import SPHEROIDS, gpu_variants, load, probability_map  # noqa: E402
from default_model_gpu import SPHEROID_NUMBERS, SPHEROID_PIXEL_SIZE_UM  # noqa: E402
from train_benchmark import _table  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "fold_errors_results.md"


def error_row(prediction: np.ndarray, truth: np.ndarray, image: np.ndarray) -> dict:
    """IoU, error pixels and the largest false-positive component of one prediction.

    Examples
    --------
    >>> truth = np.zeros((20, 20), bool); truth[2:8, 2:8] = True
    >>> prediction = truth.copy(); prediction[12:16, 12:16] = True
    >>> row = error_row(prediction, truth, truth * 200 + 10)
    >>> row["fp_px"], row["largest_fp_px"], row["largest_fp_edge_on_mask"], row["iou_without_largest_fp"]
    (16, 16, 0.0, 1.0)
    """
    from scipy import ndimage

    false_positive, false_negative = prediction & ~truth, truth & ~prediction
    iou = foreground_scores(prediction, truth)["iou"]
    row = {"iou": iou, "fp_px": int(false_positive.sum()), "fn_px": int(false_negative.sum()),
           "largest_fp_px": 0, "largest_fp_share": 0.0, "largest_fp_brightness": float("nan"),
           "largest_fp_edge_on_mask": 0.0, "iou_without_largest_fp": iou}
    labels, count = ndimage.label(false_positive)
    if count == 0:
        return row
    sizes = np.bincount(labels.ravel())[1:]
    largest = labels == int(np.argmax(sizes)) + 1
    rest = prediction & ~largest
    row.update({
        "largest_fp_px": int(sizes.max()), "largest_fp_share": float(sizes.max() / sizes.sum()),
        "largest_fp_brightness": float(np.median(image[largest]) / max(float(np.median(image[truth])), 1e-9)),
        "largest_fp_edge_on_mask": float(truth[ndimage.binary_dilation(largest) & ~largest].mean()),
        "iou_without_largest_fp": foreground_scores(rest, truth)["iou"]})
    return row


def variant_rows(name: str, folder: Path) -> list[dict]:
    """Each held-out image of a variant: its fold model's errors, and the all-data model's IoU."""
    import tifffile

    rows = []
    everything = load(folder / "all" / "model.pt")
    for number in SPHEROID_NUMBERS:
        fold = load(folder / f"fold{number}" / "model.pt")
        for day in (0, 2):
            image_name = f"spheroid{number}_day{day}"
            image = tifffile.imread(SPHEROIDS / f"{image_name}.tif")
            truth = tifffile.imread(SPHEROIDS / f"{image_name}_mask.tif") > 0
            held_out = probability_map(fold, image, SPHEROID_PIXEL_SIZE_UM) > 0.5
            seen = probability_map(everything, image, SPHEROID_PIXEL_SIZE_UM) > 0.5
            rows.append({"variant": name, "image": image_name, **error_row(held_out, truth, image),
                         "all_data_model_iou": foreground_scores(seen, truth)["iou"]})
            print(name, image_name, f"{rows[-1]['iou']:.4f}", flush=True)
    return rows


def write_page(rows: list[dict], runs: list[Path], load_before: tuple, seconds: float) -> None:
    """The results page."""
    from spheroseg.atomic import write_text

    shown = [{**row, "iou": f"{row['iou']:.4f}", "largest_fp_share": f"{row['largest_fp_share']:.2f}",
              "largest_fp_brightness": f"{row['largest_fp_brightness']:.2f}",
              "largest_fp_edge_on_mask": f"{row['largest_fp_edge_on_mask']:.2f}",
              "iou_without_largest_fp": f"{row['iou_without_largest_fp']:.4f}",
              "all_data_model_iou": f"{row['all_data_model_iou']:.4f}"} for row in rows]
    lines = [
        "# Leave one spheroid out: where the fold models go wrong", "",
        "Written by `benchmarks/fold_errors.py` (do not edit by hand) on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, CPU; "
        f"models from {', '.join(f'`{run}`' for run in runs)} (`benchmarks/default_model_gpu.py`); "
        f"{seconds:.0f} s, load average before {tuple(round(x, 2) for x in load_before)}, "
        f"after {tuple(round(x, 2) for x in os.getloadavg())}.", "",
        "Each fold model on its held-out spheroid, scored as in `default_model_results.md` (resampled "
        f"from the assumed {SPHEROID_PIXEL_SIZE_UM} um/px to 2 um/px and back, probability > 0.5). "
        "FP: predicted, not annotated; FN: annotated, not predicted. Largest FP: the biggest "
        "connected false-positive region; brightness: its median pixel over the annotated pixels' "
        "median; edge on mask: the share of the one-pixel ring around it that is annotated (about half "
        "for an outline drawn too wide, near 0 for an object the annotators left out). IoU without it: that one region counted as "
        "background (a diagnosis, not a score). All-data model: the variant's model trained on all "
        "four spheroids, on the same image (the recipe's ceiling there).", "",
        *_table(shown, ["variant", "image", "iou", "fp_px", "fn_px", "largest_fp_px", "largest_fp_share",
                        "largest_fp_brightness", "largest_fp_edge_on_mask", "iou_without_largest_fp",
                        "all_data_model_iou"]), ""]
    write_text(RESULTS, "\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu-runs", type=Path, nargs="+", required=True,
                        help="output folders of benchmarks/default_model_gpu.py, tar files unpacked")
    args = parser.parse_args(argv)
    load_before, start = os.getloadavg(), time.perf_counter()
    rows = [row for name, folder in gpu_variants(args.gpu_runs).items() for row in variant_rows(name, folder)]
    write_page(rows, args.gpu_runs, load_before, time.perf_counter() - start)
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
