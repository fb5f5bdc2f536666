"""How much of the U-Net-against-forest gap of the simulated loop is the seed? (issue 18)

``human_in_the_loop.py`` fine-tunes once (training seed 0) and fits the random forest once
(seed 0) on the proposed frames. The fine-tuning recipe sweep (``finetune_recipe_sweep.py``)
shows the U-Net's mean IoU moving by up to 0.003 between training seeds on the same frames, the
size of the gap to the forest. This script repeats the proposed-frame runs of that benchmark,
same start model, same picks, same held-out images, for several seeds of both methods: the
U-Net's ``spheroseg train --seed`` (patches, augmentation) and the forest's pixel sample and trees.
It chooses nothing: every seed's figure is reported, and the mean over seeds.

    nice -n 5 python benchmarks/human_in_the_loop_seeds.py [--k 4 2] [--seeds 0 1 2] [--output FILE.md]

About 2.5 minutes per U-Net run on 2 cores. Results: ``human_in_the_loop_seeds_results.md``
(and ``.json`` beside it, rewritten after every run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import human_in_the_loop as loop  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def markdown(results: dict) -> str:
    """The results page."""
    lines = ["# Simulated loop, proposed frames: U-Net and forest over seeds", "",
             "Written by `benchmarks/human_in_the_loop_seeds.py` (do not edit by hand); see its docstring.", "",
             f"Run {results['started']} to {results.get('finished', '(not finished)')} on {results['machine']}, "
             f"CPU; command `{results['command']}`. Start model `{results['model']}` (native scale). Load average "
             f"before {tuple(round(x, 2) for x in results['load_before'])} (shared 2-core machine, run niced).", "",
             "| k | method | seed | mean IoU held-out | per image | train CPU s |", "|---|---|---|---|---|---|"]
    for k, block in results["k"].items():
        for method in ("unet", "forest"):
            label = "U-Net finetune" if method == "unet" else "random forest"
            for run in block[method]:
                per = ", ".join(f"{n.replace('spheroid', 's')} {v:.3f}" for n, v in run["ious"].items())
                lines.append(f"| {k} | {label} | {run['seed']} | {run['mean_iou']:.4f} | {per} | {run['cpu_s']:.0f} |")
    lines += ["", "| k | frames picked | U-Net mean over seeds (range) | forest mean over seeds (range) | "
              "U-Net >= forest |", "|---|---|---|---|---|"]
    for k, block in results["k"].items():
        unet = [run["mean_iou"] for run in block["unet"]]
        forest = [run["mean_iou"] for run in block["forest"]]
        if not unet or not forest:
            continue
        verdict = "yes" if np.mean(unet) >= np.mean(forest) else "**no**"
        lines.append(f"| {k} | {', '.join(block['picks'])} | {np.mean(unet):.4f} ({min(unet):.4f}-{max(unet):.4f}) | "
                     f"{np.mean(forest):.4f} ({min(forest):.4f}-{max(forest):.4f}) | {verdict} |")
    lines += ["", "U-Net: `spheroseg train --recipe finetune --init MODEL --seed S` on the picked frames, IoU at "
              "probability > 0.5; train CPU s is user + system of the training process. Forest: fitting CPU "
              "s (features included)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[4, 2])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args, data, header = loop.side_benchmark(parser, ROOT / "benchmarks" / "human_in_the_loop_seeds_results.md",
                                             markdown)
    probs = {name: p.astype(np.float32) for name, p in loop.start_probabilities(args.model, data).items()}
    results: dict = header | {"k": {}}
    save = loop.page_writer(args.output, markdown)
    for k in args.k:
        picks = loop.proposed(probs, k)
        held = loop.held_out(picks)
        block = results["k"][str(k)] = {"picks": picks, "unet": [], "forest": []}
        for seed in args.seeds:
            run = loop.unet_run(args.model, picks, data, ("--seed", str(seed)), held)
            block["unet"].append({"seed": seed, "ious": run["ious"], "mean_iou": run["mean_iou"],
                                  "cpu_s": run["cpu_s"], "wall_s": run["wall_s"]})
            forest = loop.forest_run(picks, data, held, seed=seed)
            block["forest"].append({"seed": seed, "ious": forest["ious"], "mean_iou": forest["mean_iou"],
                                    "cpu_s": forest["train_cpu_s"]})
            print(f"k={k} seed {seed}: U-Net {block['unet'][-1]['mean_iou']:.4f}, forest {forest['mean_iou']:.4f}",
                  file=sys.stderr, flush=True)
            save(results)
    save(results, finished=True)


if __name__ == "__main__":
    main()
