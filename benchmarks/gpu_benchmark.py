"""GPU proof of predict and train (issue 19): one prepared run on a CUDA machine.

Run from the repository root on a machine with an NVIDIA GPU (GPU time is scarce, so every
measurement is in this one script, and its results are written after each step)::

    python benchmarks/gpu_benchmark.py --out DIR [--spheroids ../shared/data/spheroids]

Steps, in order of importance (``--steps`` picks some):

``env``      GPU name, driver, torch and CUDA versions.
``predict``  tile + predict + stitch (separate processes, as the Snakemake rules run them with
             ``config/config.yaml``) on 16 x 2048^2 frames at the default precision (``auto``),
             fp32, bf16 and fp16; the bare forward pass over the same tiles at the same
             precision and batch size; tile-MPix/s of both, GPU utilisation and memory sampled
             with NVML during each predict, torch's peak memory in the forward; IoU of the
             reduced-precision masks (probability > 0.5) with the fp32 masks; and the same chain
             at the CUDA batch size ``predict.batch_size: null`` picks.
``oom``      a real CUDA out-of-memory: what the bare model raises for a very large batch, then
             the predict tile runner's batch halving on that batch, checked against a small batch.
``train``    2 epochs on the spheroid annotations (spheroid 9 held out for validation) on the GPU
             and on this machine's CPU, same seed: seconds per epoch and validation IoU of each.
``monai``    MONAI ``sliding_window_inference`` with the same TorchScript file and frames (roi 256,
             overlap 0.25, gaussian, sw_batch_size 4 and 32, fp32 and the chain's precision).
``gputests`` the test suite's ``gpu``-marked tests (run second, right after ``env``).
``tests``    all of tests/inference and tests/training (CUDA is then the ``auto`` device).

Results: ``DIR/gpu_results.json`` (rewritten after every step) and logs in ``DIR``. Render the
markdown page here afterwards: ``python benchmarks/gpu_benchmark.py --render DIR/gpu_results.json``
writes ``benchmarks/gpu_results.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from spheroseg.propose import mask_iou

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
sys.path.insert(0, str(ROOT))
DEFAULT_MODEL = REPO / "models" / "default.pt"
CLI = [sys.executable, "-c", "import sys; from spheroseg.cli import main; sys.exit(main(sys.argv[1:]))"]
STEP_NAMES = ("env", "gputests", "predict", "oom", "train", "monai", "tests")
# cpu only for a dry run of the plumbing on a machine without a GPU (figures meaningless)
DEVICE = os.environ.get("GPU_BENCH_DEVICE", "cuda")
LOGS = Path(os.environ.get("GPU_BENCH_WORK", "/tmp/gpu_benchmark"))


# --- GPU monitor --------------------------------------------------------------------------


class Monitor:
    """Sample GPU utilisation and memory in use with NVML every 50 ms, per named phase."""

    def __init__(self) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml, self._handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception:  # noqa: BLE001 - no NVML: the phases record nothing
            self._nvml = None
        self.phases: dict[str, dict[str, float]] = {}

    @contextmanager
    def phase(self, name: str):  # noqa: ANN201 - a context manager
        samples: list[tuple[int, int]] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.05):
                rates = self._nvml.nvmlDeviceGetUtilizationRates(self._handle)
                memory = self._nvml.nvmlDeviceGetMemoryInfo(self._handle)
                samples.append((rates.gpu, memory.used))

        thread = threading.Thread(target=sample, daemon=True) if self._nvml else None
        if thread:
            thread.start()
        try:
            yield
        finally:
            if thread:
                stop.set()
                thread.join()
            if samples:
                self.phases[name] = {"utilisation_mean_pct": sum(s[0] for s in samples) / len(samples),
                                     "utilisation_max_pct": max(s[0] for s in samples),
                                     "memory_used_max_gib": max(s[1] for s in samples) / 2**30,
                                     "samples": len(samples)}


# --- helpers ------------------------------------------------------------------------------


def run(command: list[str], log: Path, *, env: dict[str, str] | None = None) -> float:
    """Run a command, appending its output to `log`; wall seconds. Raises on failure."""
    start = time.perf_counter()
    with open(log, "ab") as sink:
        sink.write(f"\n$ {' '.join(map(str, command))}\n".encode())
        sink.flush()
        code = subprocess.call([str(part) for part in command], stdout=sink, stderr=sink,
                               env={**os.environ, **(env or {})})
    if code != 0:
        raise RuntimeError(f"command failed ({code}): {' '.join(map(str, command))}; see {log}")
    return time.perf_counter() - start


def step(name: str, *args: object, log: Path) -> dict:
    """Run a step of this script in a child process and return the JSON it prints last."""
    result = log.with_suffix(f".{name}.json")
    run([sys.executable, __file__, "--step", name, *map(str, args), "--result", result], log)
    return json.loads(result.read_text())


def rule_options() -> dict[str, list[str]]:
    """The tile and predict options the workflow passes with config/config.yaml."""
    import yaml

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    tile, predict = [], ["--channel", "0", "--device", DEVICE]
    for key, flag in (("tile_size", "--tile-size"), ("overlap", "--overlap")):
        if config["tiling"].get(key) is not None:
            tile += [flag, str(config["tiling"][key])]
    if config["predict"].get("batch_size") is not None:
        predict += ["--batch-size", str(config["predict"]["batch_size"])]
    return {"tile": tile, "predict": predict, "batch_size": config["predict"].get("batch_size")}


def tile_store_info(tiles: Path) -> dict:
    """What predict recorded in its tile store (device, precision, batch size, tiles)."""
    import zarr

    return dict(zarr.open_array(store=str(tiles), mode="r").attrs["spheroseg"])


def chain(image: Path, model: Path, folder: Path, monitor: Monitor, *, label: str,
          predict_extra: list[str], options: dict, log: Path) -> dict:
    """tile -> predict -> stitch as separate processes; seconds per rule and GPU samples."""
    folder.mkdir(parents=True, exist_ok=True)
    plan, tiles, probabilities = folder / "tiles.json", folder / "tiles.zarr", folder / "p.ome.zarr"
    seconds = {"tile": run([*CLI, "tile", "--image", image, "--model", model, *options["tile"],
                            "--output", plan], log)}
    with monitor.phase(f"{label}-predict"):
        seconds["predict"] = run([*CLI, "predict", "--image", image, "--plan", plan, "--model", model,
                                  *options["predict"], *predict_extra, "--output", tiles], log)
    loop_rate = _last_loop_rate(log)
    seconds["stitch"] = run([*CLI, "stitch", "--plan", plan, "--tiles", tiles, "--output", probabilities], log)
    info = tile_store_info(tiles)
    return {"seconds": seconds, "chain_seconds": sum(seconds.values()), "precision": info["precision"],
            "batch_size": info["batch_size"], "tiles": info["tiles"], "device": info["device"],
            "predict_internal_seconds": info.get("seconds"), "gpu": monitor.phases.get(f"{label}-predict"),
            "predict_loop_tile_mpix_per_s": loop_rate,
            "plan": str(plan), "tile_store": str(tiles), "probabilities": str(probabilities)}


def _last_loop_rate(log: Path) -> float | None:
    """Tile-MPix/s of predict's tile loop (model loaded, start-up excluded), from its last progress line."""
    import re

    rates = re.findall(r"spheroseg predict: tiles \d+/\d+ \(100%\), ([\d.]+) Mpx/s", log.read_text(errors="replace"))
    return float(rates[-1]) if rates else None


# --- child steps --------------------------------------------------------------------------


def forward_step(image: str, plan_path: str, model: str, precision: str, batch_size: str, result: str) -> None:
    """The model alone over the plan's tiles already on the GPU, at one precision and batch size."""
    import numpy as np
    import torch

    from spheroseg import ngff
    from spheroseg.inference.drivers import _read_frames  # the frames exactly as predict feeds them
    from spheroseg.inference.model import load_model, prepare_model
    from spheroseg.tiling import read_plan, tile_slices

    device = torch.device(DEVICE)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    plan = read_plan(plan_path)
    module, card = load_model(Path(model), device=device)
    module = prepare_model(module, channels=1, tile_shape=plan.tile_shape, device=device)
    array, size = ngff.open_array(image), int(batch_size)
    tiles = []
    for _, padded in _read_frames(array, plan, channels=[0], normalization=card["input"]["normalization"]):
        tiles += [padded[(slice(None), *tile_slices(plan, i))] for i in range(len(plan.origins))]
    stack = torch.from_numpy(np.stack(tiles)).to(device).contiguous(memory_format=torch.channels_last)
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    timings = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(4):  # the first pass warms up cuDNN's algorithm choice; the best of the rest counts
        sync()
        start = time.perf_counter()
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.float32,
                                                    enabled=dtype is not None):
            for begin in range(0, len(stack), size):
                torch.sigmoid(module(stack[begin:begin + size]))
        sync()
        timings.append(time.perf_counter() - start)
    Path(result).write_text(json.dumps({
        "seconds": min(timings[1:]), "all_seconds": timings, "tiles": len(stack),
        "tile_pixels": int(plan.tile_shape[0] * plan.tile_shape[1]),
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "input_memory_gib": stack.numel() * 4 / 2**30}))


def oom_step(model: str, tiles: str, result: str) -> None:
    """A real CUDA OOM: what the bare model raises, then TileModel's halving, checked."""
    import logging

    import numpy as np
    import torch

    from spheroseg.inference.model import TileModel, load_model, prepare_model

    device = torch.device("cuda")
    free, total = torch.cuda.mem_get_info(device)
    batch = np.random.default_rng(0).random((int(tiles), 1, 256, 256), dtype=np.float32)
    module, card = load_model(Path(model), device=device)
    module = prepare_model(module, channels=1, tile_shape=(256, 256), device=device)
    raw: dict[str, str] = {}
    try:
        with torch.inference_mode():
            module(torch.from_numpy(batch).to(device).contiguous(memory_format=torch.channels_last))
        raw = {"raised": "nothing"}
    except Exception as err:  # noqa: BLE001 - we record what a real OOM looks like
        raw = {"raised": f"{type(err).__module__}.{type(err).__qualname__}", "message": str(err)[:300],
               "is_OutOfMemoryError": isinstance(err, torch.cuda.OutOfMemoryError)}
    torch.cuda.empty_cache()
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("spheroseg").addHandler(handler)
    logging.getLogger("spheroseg").setLevel(logging.INFO)
    runner = TileModel(module, output_kind=card["output"]["kind"], device=device, precision=None,
                       batch_size=len(batch))
    start = time.perf_counter()
    outcome: dict[str, object] = {}
    try:
        out = runner(batch)
        outcome = {"recovered": True, "final_batch_size": runner.batch_size,
                   "seconds": time.perf_counter() - start}
        check = TileModel(module, output_kind=card["output"]["kind"], device=device, precision=None,
                          batch_size=64)
        sample = slice(0, 256)
        outcome["max_difference_vs_batch_64"] = float(np.abs(out[sample].astype(np.float32)
                                                             - check(batch[sample]).astype(np.float32)).max())
    except Exception as err:  # noqa: BLE001 - a failure to recover is the finding
        outcome = {"recovered": False, "error": f"{type(err).__qualname__}: {str(err)[:300]}"}
    Path(result).write_text(json.dumps({"tiles": len(batch), "batch_gib": batch.nbytes / 2**30,
                                        "gpu_free_gib": free / 2**30, "gpu_total_gib": total / 2**30,
                                        "bare_model": raw, "tile_model": outcome, "log": messages[-12:]}))


def monai_step(image: str, model: str, precision: str, sw_batch: str, result: str) -> None:
    """MONAI sliding_window_inference on the GPU over every frame (model load excluded)."""
    import warnings

    import numpy as np
    import torch
    from monai.inferers import sliding_window_inference

    from spheroseg import ngff
    from spheroseg.modelcard import read_verified_card
    from spheroseg.normalization import normalize_image

    card = read_verified_card(Path(model))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = torch.jit.load(model, map_location=DEVICE).eval()
    array = ngff.open_array(image)
    frames = ngff.read_metadata(image).shape[0]
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    timings, masks = [], []
    sync = torch.cuda.synchronize if DEVICE == "cuda" else (lambda: None)
    for repeat in range(2):  # the first pass warms up cuDNN; the second counts
        sync()
        start = time.perf_counter()
        for t in range(frames):
            frame = normalize_image(ngff.read_frame(array, t), card["input"]["normalization"])
            with torch.inference_mode(), torch.autocast(DEVICE, dtype=dtype or torch.float32,
                                                        enabled=dtype is not None):
                logits = sliding_window_inference(torch.from_numpy(frame)[None, None].to(DEVICE), roi_size=(256, 256),
                                                  sw_batch_size=int(sw_batch), predictor=net, overlap=0.25,
                                                  mode="gaussian")
            probabilities = torch.sigmoid(logits.float())[0, 0].cpu().numpy()
            if repeat:
                masks.append(probabilities > 0.5)
        sync()
        timings.append(time.perf_counter() - start)
    np.save(Path(result).with_suffix(".npy"), np.stack(masks))
    Path(result).write_text(json.dumps({"seconds": timings[-1], "all_seconds": timings, "frames": frames}))


def probability_mask(path: str | Path):  # noqa: ANN201 - a boolean ndarray (T, Y, X)
    """The probability > 0.5 mask of every frame of a probability image."""
    import numpy as np

    from spheroseg import ngff

    return np.asarray(ngff.open_array(path)[:], dtype=np.float32) > 0.5


CHILD_STEPS = {"forward": forward_step, "oom": oom_step, "monai": monai_step}


# --- orchestrated steps -------------------------------------------------------------------


def env_step(out: Path) -> dict:
    import torch

    query = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                           capture_output=True, text=True, check=False).stdout.strip()
    properties = torch.cuda.get_device_properties(0)
    return {"nvidia_smi": query, "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(), "gpu": properties.name,
            "multiprocessors": properties.multi_processor_count, "memory_gib": properties.total_memory / 2**30,
            "bf16_supported": torch.cuda.is_bf16_supported(), "python": platform.python_version(),
            "cpu_count": os.cpu_count()}


PREDICT_RUNS = {"default": [], "fp32": ["--precision", "fp32"], "bf16": ["--precision", "bf16"],
                "fp16": ["--precision", "fp16"], "default-batch-auto": None}


def predict_bench(out: Path, monitor: Monitor, results: dict, *, frames: int, size: int,
                  runs: list[str]) -> dict:
    """Chain and forward at each precision on `frames` x `size`^2, plus masks' IoU with fp32."""
    from inference_benchmark import make_image

    work = LOGS / "work"
    work.mkdir(exist_ok=True)
    image = work / f"image{frames}.ome.zarr"
    if not image.exists():
        # At the model's own pixel size, so the model sees every 2048^2 frame unresampled.
        pixel_size = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())["input"].get("pixel_size_um")
        try:
            make_image(image, frames, size, pixel_size_um=pixel_size or 1.0)
        except TypeError:  # an older make_image without the keyword
            make_image(image, frames, size)
    options, log = rule_options(), LOGS / "predict.log"
    section: dict = {"frames": frames, "size": size, "rule_options": options, "runs": {}}
    results["predict"] = section
    for label, extra in PREDICT_RUNS.items():
        if label not in runs:
            continue
        if extra is None:  # the CUDA batch size that predict.batch_size: null would pick
            extra = []
            run_options = {**options, "predict": [a for a in options["predict"]
                                                  if a not in ("--batch-size", str(options["batch_size"]))]}
        else:
            run_options = options
        entry = chain(image, DEFAULT_MODEL, work / label, monitor, label=label, predict_extra=extra,
                      options=run_options, log=log)
        entry["forward"] = step("forward", image, entry["plan"], DEFAULT_MODEL, entry["precision"],
                                entry["batch_size"], log=log)
        megapixels = entry["tiles"] * entry["forward"]["tile_pixels"] / 1e6
        entry["chain_tile_mpix_per_s"] = megapixels / entry["chain_seconds"]
        entry["predict_tile_mpix_per_s"] = megapixels / entry["seconds"]["predict"]
        entry["forward_tile_mpix_per_s"] = megapixels / entry["forward"]["seconds"]
        entry["chain_over_forward_throughput"] = entry["forward"]["seconds"] / entry["chain_seconds"]
        section["runs"][label] = entry
        write(out, results)
    if "fp32" not in section["runs"]:
        return section
    reference = probability_mask(section["runs"]["fp32"]["probabilities"])
    for entry in section["runs"].values():
        entry["mask_iou_vs_fp32"] = mask_iou(probability_mask(entry["probabilities"]), reference)
    return section


def oom_bench(out: Path) -> dict:
    import torch

    free, _ = torch.cuda.mem_get_info(0)
    # About 1.2 GiB of activations per 1000 fp32 256^2 tiles at the widest level, plus skips:
    # a batch of this many tiles cannot fit, half or a quarter of it can.
    tiles = int(min(max(free / 2**30 * 120, 4096), 40000))
    return step("oom", DEFAULT_MODEL, tiles, log=LOGS / "oom.log")


def train_bench(out: Path, spheroids: Path) -> dict:
    """2 epochs on the spheroids on the GPU, 1 on this machine's CPU (its time per epoch), same
    seed; validation on spheroid 9. The CPU model of 2 epochs comes from a CPU-only machine
    (`--steps train` with ``GPU_BENCH_DEVICE=cpu``), to spare GPU time."""
    section = {}
    for device, epochs in ((DEVICE, 2), ("cpu", 1)):
        model = LOGS / "work" / f"train_{device}_{epochs}.pt"
        seconds = run([*CLI, "train", "--annotations", spheroids, "--output", model, "--epochs", str(epochs),
                       "--patience", "0", "--seed", "0", "--device", device, "--no-progress",
                       "--val-names", "spheroid9_day0", "spheroid9_day2"], LOGS / f"train_{device}_{epochs}.log")
        card = json.loads(model.with_suffix(".json").read_text())
        training = card["training"]
        section[f"{device}-{epochs}-epochs"] = {"process_seconds": seconds, "training_time_s": training.get("training_time_s"),
                           "epochs_run": training.get("epochs_run"), "config": training.get("config"),
                           "seconds_per_epoch": training["training_time_s"] / max(1, training["epochs_run"]),
                           "metrics": card.get("metrics"), "stop_reason": training.get("stop_reason")}
    return section


def monai_bench(out: Path, results: dict) -> dict:
    runs = results.get("predict", {}).get("runs", {})
    image = LOGS / "work" / f"image{results.get('predict', {}).get('frames', 16)}.ome.zarr"
    default_precision = runs.get("default", {}).get("precision", "bf16")
    import numpy as np

    chain = probability_mask(runs["fp32"]["probabilities"]) if "fp32" in runs else None
    section = {}
    for precision in sorted({"fp32", default_precision}):
        for sw_batch in (4, 32):
            entry = step("monai", image, DEFAULT_MODEL, precision, sw_batch, log=LOGS / "monai.log")
            if chain is not None:
                entry["mask_iou_vs_chain_fp32"] = mask_iou(np.load(LOGS / "monai.monai.npy"), chain)
            section[f"{precision}-sw{sw_batch}"] = entry
    return section


def tests_step(out: Path, runs: dict[str, list[str]]) -> dict:
    """Run pytest selections; exit code, time, summary line and failing tests of each."""
    section = {}
    for label, args in runs.items():
        log = LOGS / f"pytest_{label}.log"
        start = time.perf_counter()
        with open(log, "wb") as sink:
            code = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o",
                                    "addopts=-ra --strict-markers", "--timeout", "300", *args],
                                   stdout=sink, stderr=sink)
        lines = log.read_text(errors="replace").strip().splitlines()
        section[label] = {"exit_code": code, "seconds": time.perf_counter() - start,
                          "summary": lines[-1] if lines else "",
                          "failures": [line for line in lines if line.startswith(("FAILED", "ERROR"))][:40]}
    return section


def write(out: Path, results: dict) -> None:
    """The results so far, and every log in one archive (the device returns few files)."""
    import tarfile

    (out / "gpu_results.json").write_text(json.dumps(results, indent=1, default=str))
    with tarfile.open(out / "logs.tar.gz", "w:gz") as archive:
        for path in sorted(LOGS.glob("*.log")) + sorted(LOGS.glob("*.json")):
            archive.add(path, arcname=path.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--spheroids", type=Path, default=REPO.parent / "shared" / "data" / "spheroids")
    parser.add_argument("--steps", nargs="+", choices=STEP_NAMES, default=list(STEP_NAMES))
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--predict-runs", nargs="+", choices=list(PREDICT_RUNS), default=list(PREDICT_RUNS),
                        help="which predict runs (fp32 is the masks' reference: keep it)")
    parser.add_argument("--render", type=Path, help="write benchmarks/gpu_results.md from this JSON")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.step:
        return CHILD_STEPS[args.step](*rest, args.result)
    if args.render:
        from gpu_report import render

        return render(args.render, ROOT / "gpu_results.md")
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(LOGS, ignore_errors=True)
    (LOGS / "work").mkdir(parents=True)
    results: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "errors": {}}
    monitor = Monitor()
    for name in args.steps:
        start = time.perf_counter()
        try:
            if name == "env":
                results["env"] = env_step(args.out)
            elif name == "predict":
                predict_bench(args.out, monitor, results, frames=args.frames, size=args.size,
                              runs=args.predict_runs)
            elif name == "oom":
                results["oom"] = oom_bench(args.out)
            elif name == "train":
                results["train"] = train_bench(args.out, args.spheroids)
            elif name == "monai":
                results["monai"] = monai_bench(args.out, results)
            elif name == "gputests":
                results["gputests"] = tests_step(args.out, {"gpu-marked": ["-m", "gpu", "tests/inference",
                                                                          "tests/training"]})
            elif name == "tests":
                results["tests"] = tests_step(args.out, {"inference+training": ["-m", "not workflow",
                                                                                "tests/inference", "tests/training"]})
        except Exception as err:  # noqa: BLE001 - record and go on: GPU time is scarce
            results["errors"][name] = f"{type(err).__name__}: {err}"
        results.setdefault("step_seconds", {})[name] = time.perf_counter() - start
        results["gpu_phases"] = monitor.phases
        write(args.out, results)
        print(f"{name}: {results['step_seconds'][name]:.1f} s {results['errors'].get(name, 'ok')}", flush=True)
    shutil.rmtree(LOGS / "work", ignore_errors=True)
    return None


if __name__ == "__main__":
    main()
