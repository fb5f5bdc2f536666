"""Benchmark tiled inference: the chain against the bare forward pass and against MONAI, its
seams and masks, and the memory of each rule.

In one run, on this machine, with the model given by ``--model`` (default
``models/default.pt``), on positions of realistic content (`realistic.py`) at the model
card's pixel size (so that no contender resamples):

1. **Chain / forward** on 16 and on 4 frames of 2048 x 2048: the chain is ``spheroseg
   tile``, ``predict`` and ``stitch`` as the workflow runs them (separate processes,
   the options ``workflow/rules/infer.smk`` passes at the config defaults, start-up
   included); the forward is the model alone over exactly the chain's tiles at the
   precision, layout and batch size ``predict`` recorded (tiles prepared beforehand; only
   the model calls timed). Rounds in A-B-B-A order (chain, forward, forward, chain; the
   next round B-A-A-B); the ratio of a round is mean chain / mean forward. After each
   forward run, the *floor*: a process that only starts Python, imports torch and loads the
   TorchScript file. (forward + floor) / forward bounds chain / forward from below for any
   chain whose predict step is a process of its own.
2. **MONAI / chain** on 16 frames: ``monai.inferers.sliding_window_inference`` (roi 256,
   overlap 0.25, mode gaussian, sw_batch_size 4, float32, NCHW) with the same TorchScript
   file and normalisation under ``torch.inference_mode``, one process reading frames and
   writing float16 probabilities (start-up included; the OpenMP waiting policy `spheroseg`
   sets, so that a busy machine does not penalise MONAI more), against the chain at the default
   precision and with ``--precision fp32``, in the order M, C, F, F, C, M. The masks
   (probability > 0.5) of each chain are compared with MONAI's (IoU over all frames).
3. **Seams** on the 8 spheroid images in ``../shared/data/spheroids`` and the first frame of
   the 16-frame position: the chain at default settings against a float32 whole-frame
   prediction (largest probability difference beyond the halo, mask IoU) and MONAI's.
4. **Memory**: the peak resident memory of each rule's process tree (sampled from /proc)
   on a 100-frame 2048 x 2048 position.

Heavy steps run in child processes. Results go to ``benchmarks/inference_results.md``; the
work folder ``benchmarks/_work/inference`` is deleted at the end. Run from the repository
root: ``python benchmarks/inference_benchmark.py [--model PATH]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

# The thread settings `spheroseg` sets for itself (src/spheroseg/cli/__init__.py), before
# torch is imported: the forward pass and MONAI run under the same OpenMP waiting policy as
# the chain (spinning waits cost a 2-thread forward 3.3x on a busy 2-core machine).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
WORK = ROOT / "_work" / "inference"
SPHEROIDS = REPO.parent / "shared" / "data" / "spheroids"
DEFAULT_MODEL = REPO / "models" / "default.pt"
CLI = [sys.executable, "-c", "import sys; from spheroseg.cli import main; sys.exit(main(sys.argv[1:]))"]
RULE_OPTIONS = {  # config/config.yaml defaults, as workflow/rules/infer.smk passes them
    "tile": [],  # tiling.tile_size and overlap null: tiles fitted to the image
    "predict": ["--channel", "0", "--device", "auto", "--precision", "auto"],  # batch_size null
    "stitch": ["--window", "gaussian", "--dtype", "float16"],
}
#: The least a predict process does before its first tile: start Python, import torch, load the
#: TorchScript file (no spheroseg import, no card check, no freezing). Timed after each forward run.
FLOOR = [sys.executable, "-c", "import sys, torch; torch.jit.load(sys.argv[1], map_location='cpu')"]
MONAI = {"roi_size": (256, 256), "sw_batch_size": 4, "overlap": 0.25, "mode": "gaussian"}

sys.path.insert(0, str(ROOT))
from procstats import run_measured  # noqa: E402


def step(name: str, *args: object, log: Path | None = None) -> dict[str, float]:
    """Run a step of this script in a child process; its seconds and peak memory."""
    return run_measured([sys.executable, __file__, "--step", name, *map(str, args)],
                        log=log or WORK / f"{name}.log")


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


# --- steps (run in child processes) -------------------------------------------------------


def make_image(path: Path, frames: int, size: int, *, pixel_size_um: float = 1.0) -> None:
    """A position of `frames` realistic frames (`realistic.py`), 10 min apart. With the default
    model (2 um pixels in its card) a 1 um image is resampled to half its size before predict."""
    from realistic import realistic_frames

    from spheroseg import ngff

    array = ngff.create_image(path, shape=(frames, 1, size, size), dtype="uint16", axes="tcyx",
                              pixel_size_um=pixel_size_um, time_interval_s=600.0)
    for t, frame in enumerate(realistic_frames(frames, size, keyframes=min(frames, 8))):
        ngff.write_frame(array, t, frame[None])


def forward_only(image: Path, plan_path: Path, tiles: Path, model: Path, result: Path) -> None:
    """Time the model alone over the plan's tiles, with the settings predict recorded."""
    import numpy as np
    import torch

    from spheroseg import ngff
    from spheroseg.inference.model import load_model, prepare_model
    from spheroseg.inference.rescale import to_model_grid
    from spheroseg.normalization import normalize_image
    from spheroseg.runtime import configure_allocator
    from spheroseg.tiling import pad_frame, read_plan, tile_slices

    configure_allocator()
    info = read_json(tiles / "zarr.json")["attributes"]["spheroseg"]
    plan = read_plan(plan_path)
    device = torch.device(info["device"])
    precision = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[info["precision"]]
    module, card = load_model(model, device=device)
    module = prepare_model(module, channels=1, tile_shape=plan.tile_shape, device=device)
    frames = ngff.open_frames(image)
    seconds, batch_size = 0.0, info["batch_size"]
    for t in range(plan.frames):
        normalized = normalize_image(ngff.read_frame(frames, t)[None], card["input"]["normalization"])
        padded = pad_frame(to_model_grid(normalized, plan), plan)  # as predict: on the model's grid
        stack = np.stack([padded[(slice(None), *tile_slices(plan, i))] for i in range(len(plan.origins))])
        batches = [torch.from_numpy(stack[i:i + batch_size]).to(device).contiguous(
            memory_format=torch.channels_last) for i in range(0, len(stack), batch_size)]
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


def _load_plain(model: Path):  # noqa: ANN202 - a torch module, as a user loads it
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(str(model), map_location="cpu").eval()


def monai_sliding_window(image: Path, model: Path, output: Path) -> None:
    """MONAI sliding_window_inference over every frame, fp32, one process, written to OME-Zarr."""
    import numpy as np
    import torch
    from monai.inferers import sliding_window_inference

    from spheroseg import ngff
    from spheroseg.modelcard import read_verified_card
    from spheroseg.normalization import normalize_image

    card = read_verified_card(model)
    net = _load_plain(model)
    meta = ngff.read_metadata(image)
    frames = ngff.open_frames(image)
    target = ngff.create_image(output, shape=(meta.shape[0], *meta.shape[-2:]), dtype="float16",
                               axes="tyx", pixel_size_um=meta.pixel_size_um,
                               time_interval_s=meta.time_interval_s)
    for t in range(meta.shape[0]):
        frame = normalize_image(ngff.read_frame(frames, t), card["input"]["normalization"])
        with torch.inference_mode():
            logits = sliding_window_inference(torch.from_numpy(frame)[None, None], predictor=net, **MONAI)
        ngff.write_frame(target, t, torch.sigmoid(logits)[0, 0].numpy().astype(np.float16))


def _whole_frame(net, raw, card):  # noqa: ANN001, ANN202 - float32 probabilities of one frame
    import numpy as np
    import torch

    from spheroseg.normalization import normalize_image

    divisor = card["spatial_divisor"]
    height, width = (-(-n // divisor) * divisor for n in raw.shape)
    frame = normalize_image(raw, card["input"]["normalization"])
    padded = np.pad(frame, ((0, height - raw.shape[0]), (0, width - raw.shape[1])), mode="reflect")
    with torch.inference_mode():
        whole = torch.sigmoid(net(torch.from_numpy(padded)[None, None]))[0, 0].numpy()
    return whole[: raw.shape[0], : raw.shape[1]]


def _whole_frame_at(precision: str, model: Path, raw, card):  # noqa: ANN001, ANN202
    """Probabilities of one whole frame from the model as predict runs it (frozen, NHWC) at
    `precision`: the chain's seams alone, without the precision's own difference."""
    import numpy as np
    import torch

    from spheroseg.inference.model import load_model, prepare_model
    from spheroseg.normalization import normalize_image

    module, _ = load_model(model, device=torch.device("cpu"))
    module = prepare_model(module, channels=1, tile_shape=(64, 64), device=torch.device("cpu"))
    divisor = card["spatial_divisor"]
    height, width = (-(-n // divisor) * divisor for n in raw.shape)
    frame = normalize_image(raw, card["input"]["normalization"])
    padded = np.pad(frame, ((0, height - raw.shape[0]), (0, width - raw.shape[1])), mode="reflect")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    tensor = torch.from_numpy(padded)[None, None].contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
        whole = torch.sigmoid(module(tensor).float())[0, 0].numpy()
    return whole[: raw.shape[0], : raw.shape[1]]


def _compare(chain, reference, halo: int) -> dict[str, float]:  # noqa: ANN001
    """Mask IoU at 0.5 and the largest probability difference beyond the halo."""
    import numpy as np

    a, b = chain > 0.5, reference > 0.5
    union = np.logical_or(a, b).sum()
    inner = (slice(halo, -halo or None), slice(halo, -halo or None))
    return {"iou": float(np.logical_and(a, b).sum() / union) if union else 1.0,
            "max_difference_beyond_halo": float(np.abs(chain - reference)[inner].max()),
            "foreground_fraction": float(b.mean())}


def seams(model: Path, work: Path, image16: Path, result: Path, precision: str = "auto") -> None:
    """Chain (defaults, `precision`) vs float32 whole-frame and MONAI on the spheroids and a
    2048^2 frame: at fp32 the differences are the tiling's alone."""
    import numpy as np
    import tifffile
    import torch
    from monai.inferers import sliding_window_inference

    from spheroseg import ngff
    from spheroseg.cli import main as cli
    from spheroseg.modelcard import read_verified_card
    from spheroseg.normalization import normalize_image
    from spheroseg.tiling import read_plan

    card, net = read_verified_card(model), _load_plain(model)
    sources = [(path.stem, tifffile.imread(path)) for path in sorted(SPHEROIDS.glob("spheroid*_day?.tif"))]
    sources.append(("synthetic 2048 frame 0", ngff.read_frame(image16, 0)))
    rows = []
    for name, raw in sources:
        raw = raw if raw.ndim == 2 else raw[..., 0] if raw.shape[-1] in (3, 4) else raw[0]
        folder = work / name.replace(" ", "_")
        folder.mkdir(parents=True)
        image = folder / "image.ome.zarr"
        ngff.create_image(image, shape=(1, *raw.shape), dtype=raw.dtype, axes="tyx",
                          pixel_size_um=None, time_interval_s=None)[0] = raw
        plan, tiles, probabilities = folder / "tiles.json", folder / "tiles.zarr", folder / "p.ome.zarr"
        for argv in (["tile", "--image", image, "--model", model, *RULE_OPTIONS["tile"], "--output", plan],
                     ["predict", "--image", image, "--plan", plan, "--model", model,
                      *RULE_OPTIONS["predict"][:-1], precision, "--output", tiles],
                     ["stitch", "--plan", plan, "--tiles", tiles, *RULE_OPTIONS["stitch"],
                      "--output", probabilities]):
            if cli([str(arg) for arg in argv]) != 0:
                raise RuntimeError(f"spheroseg {argv[0]} failed on {name}")
        info = read_json(tiles / "zarr.json")["attributes"]["spheroseg"]
        chain = np.asarray(ngff.read_frame(probabilities, 0), dtype=np.float32)
        whole = _whole_frame(net, raw, card)
        frame = normalize_image(raw, card["input"]["normalization"])
        with torch.inference_mode():
            monai = torch.sigmoid(sliding_window_inference(torch.from_numpy(frame)[None, None],
                                                           predictor=net, **MONAI))[0, 0].numpy()
        halo = read_plan(plan).halo
        rows.append({"image": name, "precision": info["precision"], "halo": halo,
                     "tiles": f"{len(read_plan(plan).origins)} x {read_plan(plan).tile_shape[0]}"
                              f"x{read_plan(plan).tile_shape[1]}",
                     "whole": _compare(chain, whole, halo), "monai": _compare(chain, monai, halo),
                     "whole_same_precision": _compare(
                         chain, _whole_frame_at(info["precision"], model, raw, card), halo),
                     "monai_vs_whole": _compare(monai, whole, halo)})
    result.write_text(json.dumps(rows))


def mask_iou(first: Path, second: Path, result: Path) -> None:
    """IoU of the probability > 0.5 masks of two probability images, over all frames."""
    import numpy as np

    from spheroseg import ngff

    a, b = ngff.open_frames(first), ngff.open_frames(second)
    shared = union = 0
    for t in range(a.shape[0]):
        x, y = np.asarray(a[t], np.float32) > 0.5, np.asarray(b[t], np.float32) > 0.5
        shared += int(np.logical_and(x, y).sum())
        union += int(np.logical_or(x, y).sum())
    result.write_text(json.dumps({"iou": shared / union if union else 1.0}))


STEPS = {"make-image": lambda a: make_image(Path(a[0]), int(a[1]), int(a[2]), pixel_size_um=float(a[3])),
         "forward": lambda a: forward_only(*map(Path, a)),
         "monai": lambda a: monai_sliding_window(*map(Path, a)),
         "seams": lambda a: seams(*map(Path, a[:4]), *a[4:]),
         "iou": lambda a: mask_iou(*map(Path, a))}


# --- orchestration ------------------------------------------------------------------------


def run_chain(image: Path, model: Path, folder: Path, *, precision: str | None = None) -> dict:
    """tile -> predict -> stitch as the rules run them; seconds and peak memory per rule."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    plan, tiles, probabilities = folder / "tiles.json", folder / "tiles.zarr", folder / "p.ome.zarr"
    predict = list(RULE_OPTIONS["predict"])
    if precision is not None:
        predict[predict.index("--precision") + 1] = precision
    log = folder / "chain.log"
    rules = {
        "tile": run_measured([*CLI, "tile", "--image", str(image), "--model", str(model),
                              *RULE_OPTIONS["tile"], "--output", str(plan)], log=log),
        "predict": run_measured([*CLI, "predict", "--image", str(image), "--plan", str(plan),
                                 "--model", str(model), *predict, "--output", str(tiles)], log=log),
        "stitch": run_measured([*CLI, "stitch", "--plan", str(plan), "--tiles", str(tiles),
                                *RULE_OPTIONS["stitch"], "--output", str(probabilities)], log=log),
    }
    info = read_json(tiles / "zarr.json")["attributes"]["spheroseg"]
    return {"seconds": sum(rule["seconds"] for rule in rules.values()), "rules": rules,
            "cpu": sum(rule["cpu"] for rule in rules.values()),
            "precision": info["precision"], "decision": info["precision_decision"],
            "batch_size": info["batch_size"], "plan": read_json(plan), "folder": str(folder)}


def chain_forward_rounds(image: Path, model: Path, rounds: int, label: str) -> list[dict]:
    """Chain and forward in A-B-B-A rounds; one entry per run."""
    runs = []
    folder = WORK / f"chain_{label}"

    def chain() -> dict:
        load = os.getloadavg()[0]
        return {"run": "chain", "load": load, **run_chain(image, model, folder)}

    def forward() -> dict:
        load = os.getloadavg()[0]
        out = WORK / f"forward_{label}.json"
        step("forward", image, folder / "tiles.json", folder / "tiles.zarr", model, out)
        floor = run_measured([*FLOOR, str(model)], log=WORK / "floor.log")["seconds"]
        return {"run": "forward", "load": load, **read_json(out), "floor": floor}

    runs.append({"round": 0, **chain()})  # a first chain makes the tiles the forward runs on
    for number in range(1, rounds + 1):
        order = (chain, forward, forward, chain) if number % 2 else (forward, chain, chain, forward)
        for contender in order:
            runs.append({"round": number, **contender()})
            print(label, json.dumps({k: v for k, v in runs[-1].items() if k in ("round", "run", "seconds", "load")}), flush=True)
    return runs


def monai_round(image: Path, model: Path) -> list[dict]:
    """MONAI, chain (default precision), chain (fp32), then the same backwards."""
    runs = []
    for contender in ("monai", "chain", "chain fp32", "chain fp32", "chain", "monai"):
        load = os.getloadavg()[0]
        if contender == "monai":
            out = WORK / "monai.ome.zarr"
            shutil.rmtree(out, ignore_errors=True)
            runs.append({"run": "monai", "load": load, **step("monai", image, model, out)})
        else:
            precision = "fp32" if contender.endswith("fp32") else None
            folder = WORK / ("monai_chain_fp32" if precision else "monai_chain")
            runs.append({"run": contender, "load": load,
                         **run_chain(image, model, folder, precision=precision)})
        print("monai", json.dumps({k: runs[-1][k] for k in ("run", "seconds", "load")}), flush=True)
    for name, folder in (("chain", "monai_chain"), ("chain fp32", "monai_chain_fp32")):
        step("iou", WORK / folder / "p.ome.zarr", WORK / "monai.ome.zarr", WORK / "iou.json")
        runs.append({"run": f"iou {name} vs monai", **read_json(WORK / "iou.json")})
    return runs


def card_pixel_size(model: Path) -> float:
    """The model card's input pixel size (1.0 if it has none): the benchmark images use it,
    so that no run resamples and every contender sees the same 2048 x 2048 frames."""
    card = read_json(model.with_suffix(".json"))
    return float(card["input"].get("pixel_size_um") or 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--frames", type=int, nargs="+", default=[16, 4],
                        help="positions for chain / forward (the first also for MONAI)")
    parser.add_argument("--rounds", type=int, default=2, help="A-B-B-A rounds of chain / forward")
    parser.add_argument("--no-monai", action="store_true")
    parser.add_argument("--no-seams", action="store_true")
    parser.add_argument("--seams-precision", default="auto",
                        help="the chain's precision in the seams step (fp32: seams alone)")
    parser.add_argument("--memory-frames", type=int, default=100, help="0: no memory run")
    parser.add_argument("--output", type=Path, default=ROOT / "inference_results.md")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--step", default=None, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.step is not None:
        STEPS[args.step](rest)
        return
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    results: dict = {"args": vars(args) | {"model": str(args.model)}, "started_load": os.getloadavg()[0]}
    try:
        for frames in args.frames:
            image = WORK / f"image{frames}.ome.zarr"
            step("make-image", image, frames, args.size, card_pixel_size(args.model))
            if args.rounds > 0:  # --rounds 0: images only (for MONAI or seams alone)
                results[f"chain_forward_{frames}"] = chain_forward_rounds(image, args.model, args.rounds,
                                                                          str(frames))
                write_results(args.output, results)
        image = WORK / f"image{args.frames[0]}.ome.zarr"
        if not args.no_monai:
            results["monai"] = monai_round(image, args.model)
            write_results(args.output, results)
        if not args.no_seams:
            step("seams", args.model, WORK / "seams", image, WORK / "seams.json", args.seams_precision)
            results["seams"] = read_json(WORK / "seams.json")
            write_results(args.output, results)
        if args.memory_frames:
            image = WORK / f"image{args.memory_frames}.ome.zarr"
            step("make-image", image, args.memory_frames, args.size, card_pixel_size(args.model))
            results["memory"] = run_chain(image, args.model, WORK / "memory")
            write_results(args.output, results)
    finally:
        if not args.keep:
            shutil.rmtree(WORK, ignore_errors=True)


def _ratio_rows(runs: list[dict], numerator: str, denominator: str) -> list[tuple[int, float]]:
    """(round, mean numerator seconds / mean denominator seconds) per round >= 1."""
    rows = []
    for number in sorted({run["round"] for run in runs if run["round"] >= 1}):
        mine = [run for run in runs if run["round"] == number]
        top = statistics.mean(r["seconds"] for r in mine if r["run"] == numerator)
        bottom = statistics.mean(r["seconds"] for r in mine if r["run"] == denominator)
        rows.append((number, top / bottom))
    return rows


def write_results(path: Path, results: dict) -> None:
    """Write the markdown report from what has been measured so far."""
    args = results["args"]
    lines = [
        "# Inference benchmark", "",
        f"Written by `benchmarks/inference_benchmark.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), no GPU, Python "
        f"{platform.python_version()}, on a machine shared with other work (load average at each "
        f"run's start in the tables). Model: `{args['model']}`. Positions of realistic content "
        f"(`realistic.py`), {args['size']} x {args['size']} uint16 at the model card's pixel size "
        "(no resampling).", "",
    ]
    for key in [k for k in results if k.startswith("chain_forward_")]:
        lines += _chain_forward_section(key.split("_")[-1], results[key])
    if "monai" in results:
        lines += _monai_section(results["monai"], args["frames"][0])
    if "seams" in results:
        lines += _seams_section(results["seams"])
    if "memory" in results:
        memory = results["memory"]
        lines += [f"## Peak memory ({args['memory_frames']} frames of {args['size']} x {args['size']})", "",
                  "| rule | peak memory of the process tree (MB) | own peak RSS (MB) | seconds |",
                  "| --- | ---: | ---: | ---: |"]
        lines += [f"| {name} | {rule['tree_rss'] / 1e6:.0f} | {rule['rss'] / 1e6:.0f} | {rule['seconds']:.1f} |"
                  for name, rule in memory["rules"].items()]
        lines += ["", "Sampled every 0.1 s from /proc (the command and any process it starts); "
                  "own peak RSS is `ru_maxrss` from `wait4`.", ""]
    path.write_text("\n".join(lines) + "\n")


def _chain_forward_section(frames: str, runs: list[dict]) -> list[str]:
    first = runs[0]
    plan = first["plan"]
    lines = [f"## Chain / forward ({frames} frames)", "",
             f"Plan at the workflow defaults (tiles fitted to the image): {len(plan['origins'])} tiles "
             f"of {plan['tile_shape'][0]} x {plan['tile_shape'][1]} per frame, halo {plan['halo']}, "
             f"{plan['computed_fraction']:.2f}x the image's pixels computed; precision "
             f"`{first['precision']}` ({first['decision']['requested']}: {first['decision']['checked_on']}, "
             f"largest difference {first['decision']['max_difference']}), batch size {first['batch_size']}.", "",
             "| round | run | seconds | tile s | predict s | stitch s | floor s | load |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for run in runs:
        rules = run.get("rules")
        parts = " | ".join(f"{rules[n]['seconds']:.2f}" for n in ("tile", "predict", "stitch")) if rules else " |  | "
        floor = f"{run['floor']:.2f}" if "floor" in run else ""
        lines.append(f"| {run['round']} | {run['run']} | {run['seconds']:.2f} | {parts} | {floor} | {run['load']:.1f} |")
    floors = dict(_floor_rows(runs))
    lines += ["", "| round | chain / forward | floor bound (forward + floor) / forward |", "| ---: | ---: | ---: |"]
    lines += [f"| {number} | **{ratio:.3f}** | {floors[number]:.3f} |" if number in floors
              else f"| {number} | **{ratio:.3f}** | |" for number, ratio in _ratio_rows(runs, "chain", "forward")]
    lines += ["", "Round 0 only makes the tiles the forward pass runs on. Chain: three processes, "
              "start-up, model load and check, the precision decision, reading the image and writing "
              "tiles and probabilities included. Forward: the same frozen model, precision, "
              "channels_last layout and batch size over the same tiles in memory; only the model "
              "calls are timed. Floor: a process that only starts Python, imports torch and loads the "
              "TorchScript file (timed right after each forward run); no chain whose predict is a "
              "process of its own can have a chain / forward below the floor bound.", ""]
    return lines


def _floor_rows(runs: list[dict]) -> list[tuple[int, float]]:
    """(round, (mean forward seconds + mean floor seconds) / mean forward seconds) per round >= 1."""
    rows = []
    for number in sorted({run["round"] for run in runs if run["round"] >= 1}):
        forwards = [run for run in runs if run["round"] == number and "floor" in run]
        if forwards:
            forward = statistics.mean(run["seconds"] for run in forwards)
            rows.append((number, (forward + statistics.mean(run["floor"] for run in forwards)) / forward))
    return rows


def _monai_section(runs: list[dict], frames: int) -> list[str]:
    timed = [run for run in runs if "seconds" in run]
    mean = {name: statistics.mean(r["seconds"] for r in timed if r["run"] == name)
            for name in ("monai", "chain", "chain fp32")}
    lines = [f"## MONAI / chain ({frames} frames)", "",
             "MONAI `sliding_window_inference(roi_size=(256, 256), sw_batch_size=4, overlap=0.25, "
             "mode='gaussian')`, float32, NCHW, same TorchScript file and normalisation, one process "
             "(start-up included), glibc's default allocator as a user would run it, OpenMP threads "
             "waiting passively as in the chain; order M, C, F, F, C, M. CPU s: user + system "
             "seconds of the process(es), the robust figure on a shared machine.", "",
             "| run | seconds | CPU s | load |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {run['run']} | {run['seconds']:.1f} | {run.get('cpu', float('nan')):.1f} | {run['load']:.1f} |"
              for run in timed]
    cpu = {name: statistics.mean(r.get("cpu", float("nan")) for r in timed if r["run"] == name)
           for name in ("monai", "chain", "chain fp32")}
    ious = {run["run"]: run["iou"] for run in runs if "iou" in run}
    lines += ["", f"- MONAI / chain at the default precision (`{timed[1]['precision']}`): "
              f"**{mean['monai'] / mean['chain']:.2f}** (CPU seconds: **{cpu['monai'] / cpu['chain']:.2f}**); "
              "mask IoU chain vs MONAI "
              f"{ious.get('iou chain vs monai', float('nan')):.4f}",
              f"- MONAI / chain at fp32: **{mean['monai'] / mean['chain fp32']:.2f}** (CPU seconds: "
              f"**{cpu['monai'] / cpu['chain fp32']:.2f}**); mask IoU "
              f"{ious.get('iou chain fp32 vs monai', float('nan')):.4f}", ""]
    return lines


def _seams_section(rows: list[dict]) -> list[str]:
    lines = ["## Seams and masks", "",
             "The chain at default settings (tiles fitted to each image; its precision in the table, "
             "`--seams-precision`) against a float32 whole-frame "
             "prediction of the same frame and against MONAI (as above); masks at 0.5; largest "
             "absolute probability difference more than one halo from the image border. The seams "
             "alone: against a whole frame from the same frozen model at the chain's precision.", "",
             "| image | precision | tiles | halo | IoU vs whole | max diff vs whole beyond halo | max diff vs whole at the chain's precision (seams alone) | IoU vs MONAI | MONAI's own max diff vs whole | foreground |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        same = row.get("whole_same_precision", {}).get("max_difference_beyond_halo", float("nan"))
        lines.append(f"| {row['image']} | {row['precision']} | {row['tiles']} | {row.get('halo', '')} | "
                     f"{row['whole']['iou']:.4f} | {row['whole']['max_difference_beyond_halo']:.4f} | "
                     f"{same:.4f} | {row['monai']['iou']:.4f} | "
                     f"{row['monai_vs_whole']['max_difference_beyond_halo']:.4f} | "
                     f"{row['whole']['foreground_fraction']:.3f} |")
    lines += ["", f"Minimum IoU vs MONAI {min(r['monai']['iou'] for r in rows):.4f}; largest difference "
              f"beyond the halo {max(r['whole']['max_difference_beyond_halo'] for r in rows):.4f} "
              "(seams alone: "
              f"{max(r.get('whole_same_precision', {}).get('max_difference_beyond_halo', float('nan')) for r in rows):.4f}).", ""]
    return lines


if __name__ == "__main__":
    main()
