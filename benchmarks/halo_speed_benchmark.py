"""The chain's cost of the model card's halo: tile + predict + stitch with two halos, side by side.

The default model's card (``--model``) and a copy of it in the work folder whose only change is
``tile.halo`` (``--other-halo``, default 32; the TorchScript file is linked, not changed) run
the chain as the workflow does (`inference_benchmark.run_chain`: three processes, start-up
included, tiles fitted to the image) on one position of ``--frames`` realistic 2048 x 2048
frames at the card's pixel size, at the default precision and at fp32, in A-B-B-A order per
precision (card, other, other, card). Reported per run: wall seconds, CPU seconds (user +
system of the three processes; the robust figure on a shared machine) and the load average at
its start; per precision, the ratio of mean times (card / other).

Results go to ``benchmarks/halo_speed_results.md``. Run from the repository root:
``python benchmarks/halo_speed_benchmark.py [--other-halo 32] [--frames 16]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from inference_benchmark import DEFAULT_MODEL, card_pixel_size, run_chain, step  # noqa: E402

WORK = ROOT / "_work" / "halo_speed"


def other_card(model: Path, halo: int) -> Path:
    """A copy of `model`'s card with ``tile.halo`` = `halo`, beside a link to the same .pt."""
    folder = WORK / f"halo{halo}"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / model.name
    os.link(model, target)
    card = json.loads(model.with_suffix(".json").read_text())
    card["tile"]["halo"] = halo
    target.with_suffix(".json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return target


def rounds(image: Path, models: dict[str, Path], precision: str | None) -> list[dict]:
    runs = []
    for label in ("card", "other", "other", "card"):
        load = os.getloadavg()[0]
        result = run_chain(image, models[label], WORK / f"chain_{label}", precision=precision)
        runs.append({"label": label, "halo": result["plan"]["halo"], "precision": result["precision"],
                     "seconds": result["seconds"], "cpu": sum(r["cpu"] for r in result["rules"].values()),
                     "tiles": f"{len(result['plan']['origins'])} x {result['plan']['tile_shape'][0]}",
                     "computed": result["plan"]["computed_fraction"], "load": load})
        print(json.dumps(runs[-1]), flush=True)
    return runs


def write(path: Path, args: argparse.Namespace, results: dict[str, list[dict]]) -> None:
    lines = ["# Chain time against the card's halo", "",
             f"Written by `benchmarks/halo_speed_benchmark.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
             f"{os.cpu_count()} CPU cores, shared machine; model `{args.model}`; one position of {args.frames} "
             "realistic 2048 x 2048 frames; the chain as the workflow runs it (tile, predict, stitch: three "
             "processes, start-up included). CPU s: user + system of the three processes.", "",
             "| precision asked | run | halo | tiles per frame | computed | seconds | CPU s | load |",
             "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: |"]
    for asked, runs in results.items():
        lines += [f"| {asked} | {r['label']} | {r['halo']} | {r['tiles']} | {r['computed']:.3f} | "
                  f"{r['seconds']:.1f} | {r['cpu']:.1f} | {r['load']:.1f} |" for r in runs]
    lines += ["", "| precision asked | ran at | card / other (wall) | card / other (CPU) |", "| --- | --- | ---: | ---: |"]
    for asked, runs in results.items():
        mean = {k: {label: statistics.mean(r[k] for r in runs if r["label"] == label) for label in ("card", "other")}
                for k in ("seconds", "cpu")}
        lines.append(f"| {asked} | {runs[0]['precision']} | **{mean['seconds']['card'] / mean['seconds']['other']:.3f}** | "
                     f"**{mean['cpu']['card'] / mean['cpu']['other']:.3f}** |")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--other-halo", type=int, default=32)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--output", type=Path, default=ROOT / "halo_speed_results.md")
    args = parser.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    try:
        image = WORK / "image.ome.zarr"
        step("make-image", image, args.frames, 2048, card_pixel_size(args.model), log=WORK / "make.log")
        models = {"card": args.model, "other": other_card(args.model, args.other_halo)}
        results = {"auto (default)": rounds(image, models, None), "fp32": rounds(image, models, "fp32")}
        write(args.output, args, results)
    finally:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
