"""Render ``benchmarks/gpu_results.md`` from the JSON that ``gpu_benchmark.py`` wrote on a GPU.

The tables come from the JSON; everything below the ``<!-- findings -->`` line of an existing
page (the hand-written reading of the figures) is kept.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

MARKER = "<!-- findings -->"


def _predict_rows(predict: dict) -> list[str]:
    rows = ["| run | precision | batch | tiles | tile / predict / stitch s | chain s | forward s "
            "| chain tile-MPix/s | predict loop tile-MPix/s | forward tile-MPix/s | chain / forward throughput "
            "| GPU util mean / max % | GPU memory used max GiB (NVML) | forward peak GiB (torch) | mask IoU vs fp32 |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, run in predict["runs"].items():
        gpu = run.get("gpu") or {}
        seconds = run["seconds"]
        rows.append(
            f"| {label} | {run['precision']} | {run['batch_size']} | {run['tiles']} "
            f"| {seconds['tile']:.2f} / {seconds['predict']:.2f} / {seconds['stitch']:.2f} | {run['chain_seconds']:.2f} "
            f"| {run['forward']['seconds']:.3f} | {run['chain_tile_mpix_per_s']:.1f} "
            f"| {run.get('predict_loop_tile_mpix_per_s') or float('nan'):.1f} | {run['forward_tile_mpix_per_s']:.1f} "
            f"| {run['chain_over_forward_throughput']:.3f} "
            f"| {gpu.get('utilisation_mean_pct', float('nan')):.1f} / {gpu.get('utilisation_max_pct', float('nan')):.0f} "
            f"| {gpu.get('memory_used_max_gib', float('nan')):.2f} | {run['forward']['peak_memory_gib']:.2f} "
            f"| {run['mask_iou_vs_fp32']:.5f} |")
    return rows


def _train_rows(train: dict) -> list[str]:
    rows = ["| run | device | epochs | s per epoch | process s | val IoU (spheroid 9) | val Dice | train loss |",
            "|---|---|---|---|---|---|---|---|"]
    for label, run in train.items():
        metrics = run.get("metrics") or {}
        rows.append(f"| {label} | {run['config']['device']} | {run['epochs_run']} | {run['seconds_per_epoch']:.1f} "
                    f"| {run['process_seconds']:.1f} | {metrics.get('val_iou', float('nan')):.4f} "
                    f"| {metrics.get('val_dice', float('nan')):.4f} | {metrics.get('train_loss', float('nan')):.4f} |")
    return rows


def _monai_rows(monai: dict, frames: int) -> list[str]:
    rows = ["| MONAI run | seconds (16 frames, model loaded) | frames/s | mask IoU vs chain fp32 |", "|---|---|---|---|"]
    for label, run in monai.items():
        rows.append(f"| {label} | {run['seconds']:.3f} | {frames / run['seconds']:.1f} "
                    f"| {run.get('mask_iou_vs_chain_fp32', float('nan')):.5f} |")
    return rows


def _tests_rows(results: dict) -> list[str]:
    rows = ["| selection | exit | summary | failures |", "|---|---|---|---|"]
    for section in ("gputests", "tests"):
        for label, run in (results.get(section) or {}).items():
            rows.append(f"| {label} | {run['exit_code']} | {run['summary']} | {'; '.join(run['failures']) or '-'} |")
    return rows


def render(source: Path, target: Path) -> None:
    """Write the markdown page `target` from the JSON `source`, keeping `target`'s findings."""
    results = json.loads(Path(source).read_text())
    env, predict = results["env"], results.get("predict", {})
    kept = target.read_text().split(MARKER, 1)[1] if target.exists() and MARKER in target.read_text() else "\n"
    oom = results.get("oom", {})
    lines = [
        "# GPU results (issue 19)", "",
        f"Measured with `benchmarks/gpu_benchmark.py` on **{env['gpu']}** ({env['nvidia_smi']}; "
        f"{env['multiprocessors']} SMs, {env['memory_gib']:.1f} GiB), torch {env['torch']}, CUDA {env['cuda']}, "
        f"cuDNN {env['cudnn']}, Python {env['python']}, {env['cpu_count']} CPU cores; run started {results['started']} "
        f"(UTC). The raw figures are in `benchmarks/gpu_results.json`; this page is rendered from them by "
        "`python benchmarks/gpu_benchmark.py --render benchmarks/gpu_results.json`.", "",
        "## Tests on the GPU", "", *_tests_rows(results), "",
        f"## Predict: {predict.get('frames')} x {predict.get('size')}^2 frames, default model "
        "(at its own pixel size, so the model sees every pixel)", "",
        "Chain = `spheroseg tile`, `predict`, `stitch` as three processes with the workflow's options "
        f"(`{' '.join(predict.get('rule_options', {}).get('tile', [])) or 'card defaults'}`; predict "
        f"`{' '.join(predict.get('rule_options', {}).get('predict', []))}`), start-up included. Forward = the "
        "frozen model alone over the same tiles already on the GPU, same precision and batch size, best of 3 "
        "after a warm-up. Predict loop = predict's own progress rate over its tile loop (model loaded).", "",
        *_predict_rows(predict), "",
        "## Out of memory, for real", "",
        f"A batch of {oom.get('tiles')} fp32 256^2 tiles ({oom.get('batch_gib', 0):.1f} GiB of input) on a GPU with "
        f"{oom.get('gpu_free_gib', 0):.1f} GiB free.", "",
        f"- The bare TorchScript model raised `{(oom.get('bare_model') or {}).get('raised')}` "
        f"(torch.cuda.OutOfMemoryError: {(oom.get('bare_model') or {}).get('is_OutOfMemoryError')}).",
        f"- Predict's tile runner: recovered {((oom.get('tile_model') or {}).get('recovered'))}, final batch size "
        f"{(oom.get('tile_model') or {}).get('final_batch_size')}, log: {'; '.join(oom.get('log', []))}; largest "
        f"probability difference from batch 64 on 256 tiles {(oom.get('tile_model') or {}).get('max_difference_vs_batch_64')}.",
        "",
        "## Training: 2 epochs on ../shared/data/spheroids (spheroid 9 validates), seed 0", "",
        *_train_rows(results.get("train", {})), "",
        "## MONAI sliding_window_inference on the GPU (peer)", "",
        "Same TorchScript file and frames, roi 256, overlap 0.25, gaussian; one process, model loaded, "
        "second of two passes timed (reading and normalising the frames included).", "",
        *_monai_rows(results.get("monai", {}), predict.get("frames", 16)), "",
        f"Step times on the device (s): {', '.join(f'{k} {v:.0f}' for k, v in results.get('step_seconds', {}).items())}.",
        "", MARKER,
    ]
    target.write_text("\n".join(lines) + kept)
    if Path(source).resolve() != (target.parent / "gpu_results.json").resolve():
        shutil.copyfile(source, target.parent / "gpu_results.json")
