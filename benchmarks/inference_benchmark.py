"""Benchmark tiled inference: tile + predict + stitch vs MONAI, vs the pure forward, memory, IoU.

In one run, on this machine, alternating the contenders:

1. **Chain**: ``spheroseg tile``, ``predict`` and ``stitch`` run as the Snakemake rules run
   them (separate processes with the workflow's default options, start-up included) on a
   16-frame 2048 x 2048 position.
2. **MONAI**: one process that reads the same frames, normalises them the same way, runs
   ``monai.inferers.sliding_window_inference`` (roi 256, overlap 0.25, mode gaussian,
   sw_batch_size 4, float32) with the same TorchScript weights under ``torch.inference_mode``
   and writes the probabilities to an OME-Zarr (start-up included).
3. **Forward**: the model alone over exactly the chain's tiles at the chain's precision,
   layout and batch size (tiles prepared beforehand; only the model calls are timed).

Then the peak RSS (``wait4``) of each rule on a 100-frame 2048 x 2048 position, and the
mixed-precision check on the spheroid images in ``../shared/data/spheroids``: IoU of the
thresholded (0.5) probabilities from the chain at default settings with those of a float32
whole-frame prediction.

Heavy steps run in child processes so that the RSS figures are the rules' own. Results go to
``benchmarks/inference_results.md``; the work folder ``benchmarks/_work/inference`` is deleted
at the end. Run from the repository root: ``nice python benchmarks/inference_benchmark.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
WORK = ROOT / "_work" / "inference"
SPHEROIDS = REPO.parent / "shared" / "data" / "spheroids"
DEFAULT_MODEL = REPO / "models" / "default.pt"
CLI = [sys.executable, "-c", "import sys; from spheroseg.cli import main; sys.exit(main(sys.argv[1:]))"]
RULE_OPTIONS = {  # config/config.yaml defaults, as workflow/rules/infer.smk passes them
    "tile": ["--tile-size", "256", "--overlap", "0.25"],
    "predict": ["--channel", "0", "--device", "auto", "--precision", "auto", "--batch-size", "8"],
    "stitch": [],
}


def run_timed(command: list[str], log: Path | None = None) -> tuple[float, int]:
    """Run a command; return wall seconds and the child's peak RSS in bytes."""
    start = time.perf_counter()
    with open(log or os.devnull, "ab") as sink:
        process = subprocess.Popen(command, stderr=sink, stdout=sink if log else None)
        _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"command failed: {' '.join(command)} (log: {log})")
    return elapsed, usage.ru_maxrss * 1024


def step(name: str, *args: str, log: Path | None = None) -> tuple[float, int]:
    """Run a step of this script in a child process."""
    return run_timed([sys.executable, __file__, "--step", name, *args], log)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


# --- steps (run in child processes) -------------------------------------------------------


def make_image(path: Path, frames: int, size: int) -> None:
    """A position of growing bright bodies with shed cells on a noisy 12-bit background."""
    import numpy as np

    from spheroseg import ngff

    array = ngff.create_image(path, shape=(frames, 1, size, size), dtype="uint16", axes="tcyx",
                              pixel_size_um=1.0, time_interval_s=600.0)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    for t in range(frames):
        radius = size * (0.12 + 0.1 * t / max(frames, 1))
        body = ((yy - size * 0.5) ** 2 + ((xx - size * 0.45) * 0.8) ** 2) < radius**2
        cells = rng.random((size, size)) < 2e-4
        frame = 200.0 + 1200.0 * body + 900.0 * cells + rng.normal(0.0, 40.0, (size, size))
        array[t, 0] = np.clip(frame, 0, 4095).astype(np.uint16)


def make_model(path: Path) -> None:
    """An untrained UNet(depth=3, base_width=16) as TorchScript with a card (default's speed)."""
    import warnings

    import torch

    from spheroseg.modelcard import write_card
    from spheroseg.unet import UNet

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(UNet(depth=3, base_width=16).eval()).save(str(path))
    write_card({"name": "untrained", "input": {"channels": 1, "normalization": {"kind": "percentile"}},
                "output": {"kind": "logits", "channels": 1}, "spatial_divisor": 8,
                "tile": {"size": 256, "halo": 32}, "architecture": {"kind": "unet", "depth": 3, "base_width": 16}},
               path)


def forward_only(image: Path, plan_path: Path, tiles: Path, model: Path, result: Path) -> None:
    """Time the model alone over the plan's tiles, with the settings predict recorded."""
    import numpy as np
    import torch
    import zarr

    from spheroseg import ngff
    from spheroseg.runtime import configure_allocator
    from spheroseg.inference.model import load_model, prepare_model
    from spheroseg.normalization import normalize_image
    from spheroseg.tiling import pad_frame, read_plan, tile_slices

    configure_allocator()
    info = zarr.open_array(store=str(tiles), mode="r").attrs["spheroseg"]
    plan = read_plan(plan_path)
    device = torch.device(info["device"])
    precision = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[info["precision"]]
    module, card = load_model(model, device=device)
    module = prepare_model(module, channels=1, tile_shape=plan.tile_shape, device=device)
    array = ngff.open_array(image)
    seconds = 0.0
    batch_size = info["batch_size"]
    for t in range(plan.frames):
        frame = normalize_image(ngff.read_frame(array, t)[None], card["input"]["normalization"])
        padded = pad_frame(frame, plan)
        tiles_np = np.stack([padded[(slice(None), *tile_slices(plan, i))] for i in range(len(plan.origins))])
        batches = [torch.from_numpy(tiles_np[i:i + batch_size]).to(device).contiguous(
            memory_format=torch.channels_last) for i in range(0, len(tiles_np), batch_size)]
        start = time.perf_counter()
        with torch.inference_mode(), torch.autocast(device.type, dtype=precision or torch.float32,
                                                    enabled=precision is not None):
            for batch in batches:
                module(batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds += time.perf_counter() - start
    result.write_text(json.dumps({"seconds": seconds, "precision": info["precision"],
                                  "batch_size": batch_size, "tiles": plan.frames * len(plan.origins)}))


def monai_sliding_window(image: Path, model: Path, output: Path, result: Path) -> None:
    """MONAI sliding_window_inference over every frame, fp32, one process, written to OME-Zarr."""
    import warnings

    import numpy as np
    import torch
    from monai.inferers import sliding_window_inference

    from spheroseg import ngff
    from spheroseg.modelcard import read_verified_card
    from spheroseg.normalization import normalize_image

    card = read_verified_card(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = torch.jit.load(str(model), map_location="cpu").eval()
    meta = ngff.read_metadata(image)
    array = ngff.open_array(image)
    frames, height, width = meta.shape[0], meta.shape[-2], meta.shape[-1]
    target = ngff.create_image(output, shape=(frames, height, width), dtype="float16", axes="tyx",
                               pixel_size_um=meta.pixel_size_um, time_interval_s=meta.time_interval_s)
    start = time.perf_counter()
    for t in range(frames):
        frame = normalize_image(ngff.read_frame(array, t), card["input"]["normalization"])
        with torch.inference_mode():
            logits = sliding_window_inference(
                torch.from_numpy(frame)[None, None], roi_size=(256, 256), sw_batch_size=4,
                predictor=net, overlap=0.25, mode="gaussian",
            )
        target[t] = torch.sigmoid(logits)[0, 0].numpy().astype(np.float16)
    result.write_text(json.dumps({"seconds": time.perf_counter() - start}))


def spheroid_iou(model: Path, work: Path, result: Path) -> None:
    """Chain at default settings vs float32 whole-frame prediction on each spheroid image."""
    import warnings

    import numpy as np
    import tifffile
    import torch

    from spheroseg import ngff
    from spheroseg.cli import main as cli
    from spheroseg.modelcard import read_verified_card
    from spheroseg.normalization import normalize_image
    from spheroseg.tiling import read_plan

    card = read_verified_card(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = torch.jit.load(str(model), map_location="cpu").eval()
    rows = []
    for path in sorted(SPHEROIDS.glob("spheroid*_day?.tif")):
        folder = work / path.stem
        folder.mkdir(parents=True)
        raw = tifffile.imread(path)
        raw = raw if raw.ndim == 2 else raw[..., 0] if raw.shape[-1] in (3, 4) else raw[0]
        image = folder / "image.ome.zarr"
        ngff.create_image(image, shape=(1, *raw.shape), dtype=raw.dtype, axes="tyx",
                          pixel_size_um=None, time_interval_s=None)[0] = raw
        plan, tiles, probabilities = folder / "tiles.json", folder / "tiles.zarr", folder / "p.ome.zarr"
        for argv in (["tile", "--image", image, "--model", model, *RULE_OPTIONS["tile"], "--output", plan],
                     ["predict", "--image", image, "--plan", plan, "--model", model,
                      *RULE_OPTIONS["predict"], "--output", tiles],
                     ["stitch", "--plan", plan, "--tiles", tiles, "--output", probabilities]):
            if cli([str(arg) for arg in argv]) != 0:
                raise RuntimeError(f"spheroseg {argv[0]} failed on {path}")
        import zarr

        precision = zarr.open_array(store=str(tiles), mode="r").attrs["spheroseg"]["precision"]
        chain = np.asarray(ngff.open_array(probabilities)[0], dtype=np.float32)
        divisor = card["spatial_divisor"]
        height, width = (-(-n // divisor) * divisor for n in raw.shape)
        frame = normalize_image(raw, card["input"]["normalization"])
        padded = np.pad(frame, ((0, height - raw.shape[0]), (0, width - raw.shape[1])), mode="reflect")
        with torch.inference_mode():
            whole = torch.sigmoid(net(torch.from_numpy(padded)[None, None]))[0, 0].numpy()
        whole = whole[: raw.shape[0], : raw.shape[1]]
        a, b = chain > 0.5, whole > 0.5
        union = np.logical_or(a, b).sum()
        halo = read_plan(plan).halo
        inner = (slice(halo, -halo), slice(halo, -halo))
        rows.append({"image": path.stem, "precision": precision,
                     "iou": float(np.logical_and(a, b).sum() / union) if union else 1.0,
                     "foreground_fraction": float(b.mean()),
                     "max_abs_difference_beyond_halo": float(np.abs(chain - whole)[inner].max())})
    result.write_text(json.dumps(rows))


STEPS = {"make-image": lambda a: make_image(Path(a[0]), int(a[1]), int(a[2])),
         "make-model": lambda a: make_model(Path(a[0])),
         "forward": lambda a: forward_only(*map(Path, a)),
         "monai": lambda a: monai_sliding_window(*map(Path, a)),
         "iou": lambda a: spheroid_iou(*map(Path, a))}


# --- orchestration ------------------------------------------------------------------------


def run_chain(image: Path, model: Path, folder: Path, log: Path) -> dict[str, tuple[float, int]]:
    """tile -> predict -> stitch as the rules run them; wall seconds and peak RSS per rule."""
    folder.mkdir(parents=True, exist_ok=True)
    plan, tiles, probabilities = folder / "tiles.json", folder / "tiles.zarr", folder / "p.ome.zarr"
    for path in (plan, tiles, probabilities):
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    return {
        "tile": run_timed([*CLI, "tile", "--image", str(image), "--model", str(model),
                           *RULE_OPTIONS["tile"], "--output", str(plan)], log),
        "predict": run_timed([*CLI, "predict", "--image", str(image), "--plan", str(plan),
                              "--model", str(model), *RULE_OPTIONS["predict"], "--output", str(tiles)], log),
        "stitch": run_timed([*CLI, "stitch", "--plan", str(plan), "--tiles", str(tiles),
                             "--output", str(probabilities)], log),
    }


def speed_rounds(image: Path, model: Path, rounds: int, *, monai: bool = True) -> list[dict[str, float]]:
    """Alternate chain, forward-only and MONAI; return per-round seconds."""
    results = []
    chain_dir, forward_json = WORK / "chain16", WORK / "forward.json"

    def forward_step() -> None:
        step("forward", str(image), str(chain_dir / "tiles.json"), str(chain_dir / "tiles.zarr"),
             str(model), str(forward_json), log=WORK / "forward.log")

    for number in range(rounds):
        # Odd rounds time the forward first (ABBA order), so a drifting machine load does not
        # favour one side of the chain/forward ratio.
        if number % 2:
            forward_step()
        chain = run_chain(image, model, chain_dir, WORK / "chain16.log")
        if not number % 2:
            forward_step()
        monai_out, monai_json = WORK / f"monai{number}.ome.zarr", WORK / "monai.json"
        monai_wall, monai_rss = float("nan"), 0
        if monai:
            monai_wall, monai_rss = step("monai", str(image), str(model), str(monai_out),
                                         str(monai_json), log=WORK / "monai.log")
            shutil.rmtree(monai_out, ignore_errors=True)
        else:
            monai_json.write_text(json.dumps({"seconds": float("nan")}))
        forward = read_json(forward_json)
        results.append({
            "tile": chain["tile"][0], "predict": chain["predict"][0], "stitch": chain["stitch"][0],
            "chain": sum(value[0] for value in chain.values()), "forward": forward["seconds"],
            "monai": monai_wall, "monai_compute": read_json(monai_json)["seconds"],
            "precision": forward["precision"], "batch_size": forward["batch_size"],
            "tiles": forward["tiles"], "monai_rss": monai_rss,
            "rss": {name: value[1] for name, value in chain.items()},
        })
        print(json.dumps(results[-1]), flush=True)
    return results


def write_results(path: Path, *, args: argparse.Namespace, model_note: str, speed: list[dict],
                  memory: dict[str, tuple[float, int]] | None, iou: list[dict] | None,
                  plan: dict | None) -> None:
    """Write the markdown report."""
    load = os.getloadavg()[0]
    lines = [
        "# Inference benchmark", "",
        f"Written by `benchmarks/inference_benchmark.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), no GPU, Python "
        f"{platform.python_version()}, run with nice on a machine shared with other work "
        f"(load average {load:.1f} at the end). Model: {model_note}.", "",
    ]
    if speed:
        lines += [
            f"Position: {args.frames} frames of {args.size} x {args.size} uint16 (synthetic). Plan at "
            f"the workflow defaults (tile 256, overlap 0.25): {len(plan['origins'])} tiles of "
            f"{plan['tile_shape'][0]} x {plan['tile_shape'][1]} per frame, halo {plan['halo']}, "
            f"{plan['computed_fraction']:.2f}x the image's pixels computed.", "",
            f"## Speed ({args.frames} frames)", "",
            "| round | tile s | predict s | stitch s | chain s | forward-only s | MONAI s | MONAI / chain | chain / forward |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
    for number, row in enumerate(speed, 1):
        lines.append(
            f"| {number} | {row['tile']:.2f} | {row['predict']:.2f} | {row['stitch']:.2f} | {row['chain']:.2f} "
            f"| {row['forward']:.2f} | {row['monai']:.2f} | **{row['monai'] / row['chain']:.2f}** "
            f"| **{row['chain'] / row['forward']:.3f}** |")
    first = speed[0] if speed else None
    megapixels = args.frames * args.size * args.size / 1e6
    lines += [] if first is None else [
        "", f"Chain precision `{first['precision']}` (auto), batch size {first['batch_size']}, "
        f"{first['tiles']} tiles; chain throughput {megapixels / statistics.median(r['chain'] for r in speed):.2f} "
        f"image Mpx/s, MONAI {megapixels / statistics.median(r['monai'] for r in speed):.2f} image Mpx/s "
        f"(MONAI compute alone, without start-up and model loading: "
        f"{statistics.median(r['monai_compute'] for r in speed):.2f} s). Peak RSS in this run: "
        + ", ".join(f"{name} {rss / 1e6:.0f} MB" for name, rss in first["rss"].items())
        + f", MONAI {first['monai_rss'] / 1e6:.0f} MB.", "",
        "- chain: three processes, `spheroseg tile`, `predict`, `stitch`, with the options "
        "`workflow/rules/infer.smk` passes at the config defaults; wall time including Python/torch "
        "start-up, model load and check, reading the image and writing tiles and probabilities.",
        "- MONAI: `sliding_window_inference(roi_size=(256, 256), sw_batch_size=4, overlap=0.25, "
        "mode='gaussian')`, float32, NCHW, same TorchScript file, same normalisation, "
        "`torch.inference_mode`, one process reading frames and writing float16 probabilities "
        "(start-up included), glibc's default allocator as a user would run it.",
        "- forward-only: the same frozen model, precision, channels_last layout and batch size as "
        "`predict` used, over the same tiles prepared in memory beforehand; only the model calls are timed.",
        "- The contenders run one after the other, minutes apart, on 2 cores shared with other "
        "work whose load changes over minutes; rounds after the first alternate the order "
        "(ABBA) so that a drift does not favour one side.",
    ]
    if memory:
        lines += ["", f"## Peak memory ({args.memory_frames} frames of {args.size} x {args.size})", "",
                  "| rule | peak RSS (MB) | seconds |", "| --- | ---: | ---: |"]
        lines += [f"| {name} | {rss / 1e6:.0f} | {seconds:.1f} |" for name, (seconds, rss) in memory.items()]
        lines += ["", "Peak RSS is each child process's `ru_maxrss` from `wait4`."]
    if iou:
        lines += ["", "## Same answer under mixed precision (spheroids)", "",
                  "Chain at default settings vs a float32 whole-frame prediction of the same frame "
                  "(both thresholded at 0.5).", "",
                  "| image | chain precision | IoU | foreground fraction | max abs prob. difference beyond halo |",
                  "| --- | --- | ---: | ---: | ---: |"]
        lines += [f"| {r['image']} | {r['precision']} | {r['iou']:.4f} | {r['foreground_fraction']:.3f} "
                  f"| {r['max_abs_difference_beyond_halo']:.4f} |" for r in iou]
        lines += ["", f"Minimum IoU {min(r['iou'] for r in iou):.4f}, mean {statistics.mean(r['iou'] for r in iou):.4f}."]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=2, help="0: skip the speed comparison")
    parser.add_argument("--memory-frames", type=int, default=100, help="0: skip the memory run")
    parser.add_argument("--model", type=Path, default=None, help="default: models/default.pt, else untrained")
    parser.add_argument("--iou-model", type=Path, default=None,
                        help="trained model for the spheroid check (default: --model if trained)")
    parser.add_argument("--output", type=Path, default=ROOT / "inference_results.md")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--no-monai", action="store_true", help="skip MONAI (quick checks only)")
    parser.add_argument("--no-iou", action="store_true", help="skip the spheroid check")
    parser.add_argument("--step", default=None, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.step is not None:
        STEPS[args.step](rest)
        return
    WORK.mkdir(parents=True, exist_ok=True)
    try:
        model = args.model or (DEFAULT_MODEL if DEFAULT_MODEL.is_file() else None)
        if model is None:
            model = WORK / "untrained.pt"
            step("make-model", str(model))
            model_note = "untrained `UNet(depth=3, base_width=16)` TorchScript (same cost as the default model)"
        else:
            model_note = f"`{model.name}` ({read_json(model.with_suffix('.json')).get('name')})"
        speed, plan = [], None
        if args.rounds:
            image = WORK / "image16.ome.zarr"
            step("make-image", str(image), str(args.frames), str(args.size))
            speed = speed_rounds(image, model, args.rounds, monai=not args.no_monai)
            plan = read_json(WORK / "chain16" / "tiles.json")
            shutil.rmtree(image)
        report = {"args": args, "model_note": model_note, "speed": speed, "memory": None,
                  "iou": None, "plan": plan}
        write_results(args.output, **report)
        iou_model = args.iou_model or (model if model != WORK / "untrained.pt" else None)
        if iou_model is not None and SPHEROIDS.is_dir() and not args.no_iou:
            step("iou", str(iou_model), str(WORK / "iou"), str(WORK / "iou.json"), log=WORK / "iou.log")
            report["iou"] = read_json(WORK / "iou.json")
            report["model_note"] += f"; spheroid check with `{iou_model}`"
            write_results(args.output, **report)
        if args.memory_frames:
            image = WORK / "image100.ome.zarr"
            step("make-image", str(image), str(args.memory_frames), str(args.size))
            report["memory"] = run_chain(image, model, WORK / "chain100", WORK / "chain100.log")
            print(json.dumps(report["memory"]), flush=True)
            shutil.rmtree(image)
            write_results(args.output, **report)
    finally:
        if not args.keep:
            shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
