"""Leave-one-spheroid-out folds and the all-data model of candidate default-model recipes, trained
side by side on one CUDA machine (issue 13). GPU time is scarce, so everything is one command::

    python benchmarks/default_model_gpu.py --spheroids ../shared/data/spheroids --out DIR \
        [--variants source area] [--max-minutes 7]

For every variant in :data:`VARIANTS` it trains, each in its own process (``spheroseg train
--device cuda``, one CPU thread each, all at once): four folds (three spheroids + the synthetic
frames; the fourth spheroid is held out) and the model on all four spheroids. It writes
``DIR/<variant>.tar.gz`` (models, cards, training logs, console logs) and ``DIR/runs.json``
(wall time, exit status per run). The folds are scored afterwards on the CPU with
``python benchmarks/default_model_benchmark.py --only gpu-folds --gpu-runs DIR``.

On a machine without CUDA, ``--device cpu --epochs 1 --steps-per-epoch 1`` checks the plumbing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

SPHEROID_NUMBERS = (1, 2, 5, 9)
SPHEROID_PIXEL_SIZE_UM = 0.75488  # Keyence BZ-X, 10x objective (the data's source; models/README.md)
#: The recipe shared by every variant (``spheroseg train --annotations <spheroid folder> <RECIPE>``):
#: the spheroids resampled from their assumed 0.75488 um/px to the model's 2 um/px; 120 synthetic
#: frames, a third in the demo's rendering (debris as background) and a sixth in each modality
#: (every in-focus cell foreground); 100 epochs x 15 steps x 8 patches (12000 patches, about three
#: times the spheroid model's 3840).
RECIPE = [
    "--annotation-pixel-size-um", str(SPHEROID_PIXEL_SIZE_UM), "--pixel-size-um", "2.0",
    "--synthetic", "120", "--synthetic-size", "256",
    "--synthetic-modalities", "demo", "demo", "fluorescence", "invasive", "brightfield", "phase",
    "--normalization", "robust", "--intensity-augment", "mild",
    "--epochs", "100", "--steps-per-epoch", "15", "--batch-size", "8", "--patch-size", "256",
    "--val-fraction", "0", "--seed", "0", "--no-progress",
]
#: source: the spheroids and the synthetic frames each get half of the patches; area: patches in
#: proportion to image area (the spheroids about a quarter).
#: long: 160 epochs (19200 patches); demo3: 140 synthetic frames, three sevenths in the demo's
#: rendering. Options given here come after :data:`RECIPE`, so they win.
VARIANTS = {
    "source": ["--sampling", "source"],
    "area": ["--sampling", "area"],
    "source-long": ["--sampling", "source", "--epochs", "160"],
    "source-long-demo3": ["--sampling", "source", "--epochs", "160", "--synthetic", "140", "--synthetic-modalities",
                          "demo", "demo", "demo", "fluorescence", "invasive", "brightfield", "phase"],
}


def fold_folder(spheroids: Path, work: Path, held_out: int) -> Path:
    """Symbolic links to the other three spheroids (both days)."""
    folder = work / f"without-spheroid{held_out}"
    folder.mkdir(parents=True, exist_ok=True)
    for number in SPHEROID_NUMBERS:
        if number == held_out:
            continue
        for day in (0, 2):
            for suffix in ("", "_mask"):
                name = f"spheroid{number}_day{day}{suffix}.tif"
                link = folder / name
                if not link.exists():
                    link.symlink_to(spheroids.resolve() / name)
    return folder


def start_runs(args: argparse.Namespace) -> dict[tuple[str, str], dict]:
    """Start every (variant, fold or all) training as its own process, one CPU thread each."""
    runs = {}
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cli = [sys.executable, "-c", "import sys; from spheroseg.cli import main; sys.exit(main(sys.argv[1:]))"]
    for variant in args.variants:
        for held_out in (*SPHEROID_NUMBERS, None):
            name = "all" if held_out is None else f"fold{held_out}"
            folder = args.spheroids if held_out is None else fold_folder(args.spheroids, args.work, held_out)
            run_dir = args.work / variant / name
            run_dir.mkdir(parents=True, exist_ok=True)
            command = [*cli, "train", "--annotations", str(folder), *RECIPE, *VARIANTS[variant],
                       "--device", args.device, "--max-minutes", str(args.max_minutes), *args.extra,
                       "--output", str(run_dir / "model.pt")]
            log = (run_dir / "console.log").open("w")
            log.write("+ spheroseg " + " ".join(command[3:]) + "\n")
            log.flush()
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            runs[(variant, name)] = {"process": process, "started": time.monotonic(), "command": " ".join(command[3:])}
    return runs


def wait_for(runs: dict[tuple[str, str], dict]) -> list[dict]:
    """Wait for every run (progress every 20 s); one summary row per run."""
    while any(run["process"].poll() is None for run in runs.values()):
        time.sleep(20)
        done = sum(run["process"].poll() is not None for run in runs.values())
        print(f"{time.strftime('%H:%M:%S')} {done}/{len(runs)} done; load {os.getloadavg()[0]:.1f}", flush=True)
        for run in runs.values():
            if run["process"].poll() is not None and "wall_s" not in run:
                run["wall_s"] = time.monotonic() - run["started"]
    return [{"variant": variant, "run": name, "returncode": run["process"].returncode,
             "wall_s": round(run.get("wall_s", time.monotonic() - run["started"]), 1), "command": run["command"]}
            for (variant, name), run in runs.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spheroids", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/default_model_gpu"))
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=["source", "area"])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--max-minutes", type=float, default=7.0, help="each run stops and exports after this")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more train options (plumbing checks)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    runs = start_runs(args)
    print(f"{len(runs)} runs started", flush=True)
    summary = wait_for(runs)
    (args.out / "runs.json").write_text(json.dumps(summary, indent=1))
    for variant in args.variants:
        with tarfile.open(args.out / f"{variant}.tar.gz", "w:gz") as tar:
            tar.add(args.work / variant, arcname=variant)
    print(json.dumps(summary, indent=1), flush=True)
    return 1 if any(row["returncode"] != 0 for row in summary) else 0


if __name__ == "__main__":
    sys.exit(main())
