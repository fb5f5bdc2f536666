"""The simulated loop from the shipped default model's recipe, leave one spheroid out (issue 18).

``human_in_the_loop.py`` starts from ``models/synthetic.pt``, because ``models/default.pt`` has
seen every spheroid. A user's loop starts from the default, though, a model trained on real
spheroids. This script stands in for that with the default recipe's leave-one-spheroid-out
models (``benchmarks/default_model_finetune.py``, both stages, run ``foldN``: trained on the
other three spheroids, both days, and the synthetic and coarse frames, never on spheroid N).
Each fold model is fine-tuned with ``spheroseg train --recipe finetune`` on the four day-2
frames (what ``propose`` picks at k = 4 from ``synthetic.pt``; ``human_in_the_loop_results.md``)
and scored on the one image it never saw, spheroid N on day 0, at the spheroids' declared pixel
size (0.75488 um/px, resampled to the card's 2 um/px as the workflow does). The random-forest
pixel classifier of the loop benchmark, fitted on the same four frames (seeds 0-2), is scored on
the same images.

    nice -n 5 python benchmarks/human_in_the_loop_loo_default.py --folds DIR [--seeds 0] [--output FILE.md]

``DIR`` holds ``fold1 fold2 fold5 fold9``, each with ``model.pt`` and its card (the ``--out`` of
``default_model_finetune.py`` plus ``/source-long-demo3-finetune``; its stage 1 needs a GPU).
About 2 minutes per U-Net run on 2 cores. Results: ``human_in_the_loop_loo_default_results.md``
(and ``.json`` beside it, rewritten after every run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import human_in_the_loop as loop  # noqa: E402

FOLDS = (1, 2, 5, 9)
PICKS = ["spheroid5_day2", "spheroid1_day2", "spheroid9_day2", "spheroid2_day2"]
SPHEROID_PIXEL_SIZE_UM = 0.75488


def markdown(results: dict) -> str:
    """The results page."""
    lines = ["# Simulated loop from the default recipe's leave-one-out models", "",
             "Written by `benchmarks/human_in_the_loop_loo_default.py` (do not edit by hand); see its docstring.", "",
             f"Run {results['started']} to {results.get('finished', '(not finished)')} on {results['machine']}, "
             f"CPU; command `{results['command']}`. Fold models in `{results['folds']}`; picks "
             f"{', '.join(PICKS)}; images at {SPHEROID_PIXEL_SIZE_UM} um/px. Load average before "
             f"{tuple(round(x, 2) for x in results['load_before'])} (shared 2-core machine, run niced).", "",
             "| held-out image | fold model before | U-Net after, per seed | train CPU s | forest, seeds 0 / 1 / 2 |",
             "|---|---|---|---|---|"]
    forest = results["forest"]
    for name, row in results["images"].items():
        after = " / ".join(f"{run['iou']:.4f}" for run in row["unet"])
        cpu = " / ".join(f"{run['cpu_s']:.0f}" for run in row["unet"])
        lines.append(f"| {name} | {row['before']:.4f} | {after} | {cpu} | "
                     f"{' / '.join(f'{f[name]:.4f}' for f in forest)} |")
    names = list(results["images"])
    if names and forest:
        seeds = len(results["images"][names[0]]["unet"])
        complete = [name for name in names if len(results["images"][name]["unet"]) == seeds]
        unet = np.mean([np.mean([r["iou"] for r in results["images"][n]["unet"]]) for n in complete])
        peer = np.mean([np.mean([f[n] for f in forest]) for n in complete])
        before = np.mean([results["images"][n]["before"] for n in complete])
        lines += ["", f"Mean over {len(complete)} held-out images (seeds averaged): fold models before "
                      f"{before:.4f}, U-Net after **{unet:.4f}**, forest **{peer:.4f}**; U-Net >= forest: "
                      f"**{'yes' if unet >= peer else 'no'}**."]
    lines += ["", "IoU at probability > 0.5 (U-Net) or the forest's class, against the annotated mask. "
                  "Train CPU s: user + system of the training process."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=Path, required=True, help="folder with fold1 fold2 fold5 fold9")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds of the U-Net")
    args, data, header = loop.side_benchmark(
        parser, Path(__file__).with_name("human_in_the_loop_loo_default_results.md"), markdown)
    missing = [f"fold{n}" for n in FOLDS if not (args.folds / f"fold{n}" / "model.pt").is_file()]
    if missing:
        sys.exit(f"{args.folds}: no model.pt for {', '.join(missing)} (make them with "
                 f"benchmarks/default_model_finetune.py)")
    loop.PIXEL_SIZE_UM = SPHEROID_PIXEL_SIZE_UM
    save = loop.page_writer(args.output, markdown)
    held = [f"spheroid{n}_day0" for n in FOLDS]
    results = header | {"folds": str(args.folds), "images": {}, "forest": []}
    for seed in (0, 1, 2):
        results["forest"].append(loop.forest_run(PICKS, data, held=held, seed=seed)["ious"])
    for n, name in zip(FOLDS, held):
        model = args.folds / f"fold{n}" / "model.pt"
        before = loop.probabilities(model, {name: data[name][0]})[name]
        row = results["images"][name] = {"before": loop.foreground_scores(before > 0.5, data[name][1])["iou"],
                                         "unet": []}
        for seed in args.seeds:
            run = loop.unet_run(model, PICKS, data, extra=("--seed", str(seed)), held=[name])
            row["unet"].append({"seed": seed, "iou": run["ious"][name], "cpu_s": run["cpu_s"], "wall_s": run["wall_s"]})
            print(f"{name} seed {seed}: {run['ious'][name]:.4f}", file=sys.stderr, flush=True)
            save(results)
    save(results, finished=True)


if __name__ == "__main__":
    main()
