"""Human in the loop, simulated on the real spheroids (issue 18).

The 8 images of ``../shared/data/spheroids`` are the frames of an experiment: each spheroid is a
position, filmed at two timepoints (day 0 and day 2), as a time-lapse holds them (until
2026-11-28 each image was its own position, with the day as its condition; see
``loop_normalization.py`` for why the layout matters: the loop's recipe normalises a frame with
its time series' window). The model (``--model``, default
``models/synthetic.pt``, the synthetic-only model that was the default until 2026-11-28: the
default now has seen every spheroid, so a loop on them must start from a model that has not)
predicts all of them; ``spheroseg.propose.rank_frames`` picks k
frames (k = 2 and 4) from its probabilities; the true masks stand in for the person's
corrections; ``spheroseg train --recipe finetune --init MODEL`` fine-tunes on them (the
workflow's default recipe); the IoU is measured on the images not picked. The same is done
for k frames picked at random (3 seeds). Peers on the proposed frames and the same held-out
images: a random-forest pixel classifier (scikit-image ``fit_segmenter`` on
``multiscale_basic_features``, scikit-learn, 100 trees; the ilastik approach) and Otsu.

Times: wall and process CPU time (user + system of the training subprocess, or of this
process for the forest), with the load average of the shared machine.

    nice -n 10 python benchmarks/human_in_the_loop.py [--model PATH] [--output FILE.md] [--k K ...] [--seeds S ...]
        [--pixel-size-um 0.75488]

``--pixel-size-um`` declares the spheroids' scale, so that the U-Net predicts and fine-tunes at its
card's 2 um/px, as the workflow does with ``ingest.pixel_size_um`` set. Tried once (2026-11-27 22:09
UTC, load 2.3-2.7, only k = 4 proposed): mean held-out IoU 0.9765 (s1_day0 0.984, s2_day0 0.970,
s5_day0 0.991, s9_day0 0.960; 122 CPU s of training), below the native scale's 0.9819, so the
results page keeps the native scale.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

from spheroseg.normalization import normalize_image
from spheroseg.normalization import series_window
from spheroseg.propose import FrameCandidate, neighbour_disagreement, rank_frames, series_spec
from spheroseg.report.qc import uncertain_share
from spheroseg.training.evaluate import foreground_scores, predict_logits

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "spheroids"
NAMES = [f"spheroid{n}_day{d}" for n in (1, 2, 5, 9) for d in (0, 2)]
KS, SEEDS = (2, 4), (0, 1, 2)
RF_SAMPLES_PER_IMAGE = 20_000
#: --pixel-size-um: the spheroids' scale when it is declared (the files carry none; models/README.md
#: says why 0.75488 um/px). None: images and corrected frames used at their native scale.
PIXEL_SIZE_UM: float | None = None


def load_data() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Name -> (image uint8, mask bool)."""
    return {name: (tifffile.imread(DATA / f"{name}.tif"), tifffile.imread(DATA / f"{name}_mask.tif") > 0)
            for name in NAMES}


def probabilities(model_path: Path, images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Foreground probabilities of a TorchScript model (card beside it) on every image; with
    :data:`PIXEL_SIZE_UM` each image is resampled to the card's pixel size first and the
    probabilities back to the image's grid, as ``predict`` with ``rescale: auto`` does."""
    from default_model_benchmark import load, probability_map

    card = json.loads(model_path.with_suffix(".json").read_text())
    spec = card["input"]["normalization"]
    if PIXEL_SIZE_UM is not None:
        if spec.get("scope") == "series":
            sys.exit("--pixel-size-um is not supported for a model that normalises per series")
        model = load(model_path)
        return {name: probability_map(model, image, PIXEL_SIZE_UM) for name, image in images.items()}
    windows = (series_windows(spec, load_data(), list(images)) if spec.get("scope") == "series" else {})
    model = torch.jit.load(str(model_path), map_location="cpu").eval()
    return {name: 1 / (1 + np.exp(-predict_logits(model, normalize_image(image, spec, window=windows.get(name)),
                                                    divisor=card["spatial_divisor"])))
            for name, image in images.items()}


DAYS = (0, 2)  # timepoint t of a spheroid's position is day DAYS[t]


def series_names(name: str) -> list[str]:
    """The images of the time series (position) that image `name` belongs to, in time order."""
    return [f"{name.split('_')[0]}_day{day}" for day in DAYS]


def proposed(probs: dict[str, np.ndarray], k: int) -> list[str]:
    """The k frames spheroseg.propose ranks first: each spheroid a position whose timepoints are its
    days; the uncertain share, the disagreement of its masks over time and the no-object flag, as
    ``spheroseg.propose.score_position`` scores them."""
    candidates = []
    for position in sorted({name.split("_")[0] for name in probs}):
        names = series_names(position)
        disagreement = neighbour_disagreement([probs[name] > 0.5 for name in names])
        candidates += [FrameCandidate(position, t, uncertain_share(probs[name]), disagreement[t],
                                      () if (probs[name] > 0.5).any() else ("no_objects",))
                       for t, name in enumerate(names)]
    return [f"{c.position}_day{DAYS[c.timepoint]}" for c in rank_frames(candidates)[:k]]


def series_windows(spec: dict, data: dict, names: list[str]) -> dict[str, dict]:
    """Image name -> the window of its spheroid's time series under `spec` (made series), as
    ``spheroseg.propose`` records it and predict computes it; empty if the kind has none."""
    series = series_spec(spec)
    if series is None:
        return {}
    return {name: series_window([data[other][0] for other in series_names(name)], series) for name in names}


def fine_tune(model_path: Path, picks: list[str], data: dict, work: Path,
              extra: tuple[str, ...] = ()) -> tuple[Path, dict]:
    """`spheroseg train --recipe finetune` on the picked pairs, `extra` options last (they win);
    (model, wall/CPU/card figures)."""
    folder = work / "annotations"
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True)
    for name in picks:
        image, mask = data[name]
        tifffile.imwrite(folder / "images" / f"{name}.tif", image)
        tifffile.imwrite(folder / "masks" / f"{name}.tif", mask.astype(np.uint8))
    # what propose records beside the pairs: each frame's time-series window under the init
    # model's normalisation (the recipe uses it when it normalises per series)
    init_spec = json.loads(model_path.with_suffix(".json").read_text())["input"]["normalization"]
    windows = series_windows(init_spec, data, picks)
    if windows:
        series = series_spec(init_spec)
        (folder / "proposals.json").write_text(json.dumps({"proposals": {
            name: {"normalization_window": {"normalization": series, **window}}
            for name, window in windows.items()}}))
    output = work / "model.pt"
    command = [str(Path(sys.executable).parent / "spheroseg"), "train", "--annotations", str(folder), "--output", str(output),
               "--recipe", "finetune", "--init", str(model_path), "--seed", "0", "--no-progress"]
    if PIXEL_SIZE_UM is not None:  # the corrected frames keep the experiment's pixel size (propose writes it)
        card = json.loads(model_path.with_suffix(".json").read_text())
        command += ["--annotation-pixel-size-um", str(PIXEL_SIZE_UM),
                    "--pixel-size-um", str(card["input"]["pixel_size_um"])]
    command += list(extra)
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"training failed: {result.stderr[-2000:]}")
    card = json.loads(output.with_suffix(".json").read_text())["training"]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return output, {"wall_s": wall, "cpu_s": cpu, "epochs": card["epochs_run"], "best_epoch": card["best_epoch"],
                    "stop": card["stop_reason"], "val": card["val_names"]}


def held_out(picks: list[str]) -> list[str]:
    """Every image not picked."""
    return [name for name in NAMES if name not in picks]


def unet_run(model_path: Path, picks: list[str], data: dict, extra: tuple[str, ...] = (),
             held: list[str] | None = None) -> dict:
    """Fine-tune on `picks` (`extra` train options last), then score `held` (default: every image
    not picked; IoU at probability > 0.5)."""
    held = held_out(picks) if held is None else held
    with tempfile.TemporaryDirectory(prefix="hitl-") as work:
        tuned, times = fine_tune(model_path, picks, data, Path(work), extra)
        probs = probabilities(tuned, {name: data[name][0] for name in held})
    ious = {name: foreground_scores(probs[name] > 0.5, data[name][1])["iou"] for name in held}
    return {"picks": picks, "ious": ious, "mean_iou": float(np.mean(list(ious.values()))), **times}


def forest_run(picks: list[str], data: dict, held: list[str] | None = None, seed: int = 0) -> dict:
    """Random-forest pixel classifier on `picks` (sampled pixels), scored on `held` (default: every
    image not picked); `seed` draws the sampled pixels and the trees."""
    from functools import partial

    from sklearn.ensemble import RandomForestClassifier
    from skimage.feature import multiscale_basic_features
    from skimage.future import fit_segmenter, predict_segmenter

    features = partial(multiscale_basic_features, intensity=True, edges=True, texture=True, sigma_min=1, sigma_max=16)
    rng = np.random.default_rng(seed)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    stacks, labels = [], []
    for name in picks:
        image, mask = data[name]
        label = np.zeros(mask.shape, np.uint8)
        flat = rng.choice(mask.size, RF_SAMPLES_PER_IMAGE, replace=False)
        label.flat[flat] = mask.flat[flat] + 1  # 1 background, 2 spheroid, 0 unlabelled
        stacks.append(features(image)), labels.append(label)
    classifier = fit_segmenter(np.concatenate(labels, axis=1), np.concatenate(stacks, axis=1),
                               RandomForestClassifier(n_estimators=100, n_jobs=2, random_state=seed))
    train_wall, train_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    held = held_out(picks) if held is None else held
    ious = {name: foreground_scores(predict_segmenter(features(data[name][0]), classifier) == 2, data[name][1])["iou"]
            for name in held}
    return {"picks": picks, "ious": ious, "mean_iou": float(np.mean(list(ious.values()))),
            "train_wall_s": train_wall, "train_cpu_s": train_cpu, "total_wall_s": time.perf_counter() - wall0}


def otsu_iou(data: dict, picks: list[str]) -> dict[str, float]:
    """Otsu threshold per held-out image."""
    from skimage.filters import threshold_otsu

    return {name: foreground_scores(image > threshold_otsu(image), mask)["iou"]
            for name, (image, mask) in data.items() if name not in picks}


def start_probabilities(model_path: Path, data: dict) -> dict[str, np.ndarray]:
    """The start model's probabilities on every image, cached by the model's SHA-256 (scratch folder)."""
    import hashlib

    scale = "native" if PIXEL_SIZE_UM is None else f"{PIXEL_SIZE_UM}um"
    cache = (Path(tempfile.gettempdir()) / "hitl"
             / f"probs-{hashlib.sha256(model_path.read_bytes()).hexdigest()[:12]}-{scale}.npz")
    if cache.is_file():
        return dict(np.load(cache))
    probs = probabilities(model_path, {name: image for name, (image, _) in data.items()})
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **{name: p.astype(np.float16) for name, p in probs.items()})
    return probs


def run_all(model_path: Path, data: dict, ks: tuple[int, ...], seeds: tuple[int, ...], save) -> dict:
    """Every run of the benchmark (random picks for each of `seeds`, none if empty), as a JSON-able
    dict; `save(results)` after each run."""
    load_before = os.getloadavg()
    probs = {name: p.astype(np.float32) for name, p in start_probabilities(model_path, data).items()}
    results: dict = {"model": str(model_path), "pixel_size_um": PIXEL_SIZE_UM, "load_before": load_before,
                     "runs": [], "forest": [], "otsu": []}
    results["default_iou"] = {name: foreground_scores(p > 0.5, data[name][1])["iou"] for name, p in probs.items()}
    results["uncertain"] = {name: uncertain_share(p) for name, p in probs.items()}
    for k in ks:
        picks = proposed(probs, k)
        runs = [("proposed", None, picks)] + [
            ("random", seed, sorted(np.random.default_rng(seed).choice(NAMES, k, replace=False).tolist()))
            for seed in seeds]
        for kind, seed, chosen in runs:
            print(f"k={k} {kind} {seed}: {chosen}", file=sys.stderr, flush=True)
            run = unet_run(model_path, chosen, data)
            run |= {"k": k, "kind": kind, "seed": seed,
                    "before_mean_iou": float(np.mean([results["default_iou"][n] for n in run["ious"]]))}
            results["runs"].append(run)
            print(json.dumps(run), file=sys.stderr, flush=True)
            save(results | {"load_after": os.getloadavg()})
            if kind == "proposed":
                results["forest"].append(forest_run(picks, data) | {"k": k})
                results["otsu"].append({"k": k, "ious": otsu_iou(data, picks)})
                save(results | {"load_after": os.getloadavg()})
    return results | {"load_after": os.getloadavg()}


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def validation_note(runs: list[dict]) -> str:
    """Which picked frames the U-Net runs validated on (from their model cards)."""
    validated = [run for run in runs if run.get("val")]
    if not validated:
        return ("Every U-Net run trained on all its picked frames for the recipe's whole schedule, with no "
                "validation frame and no early stopping (the finetune recipe's `val_min_pairs`: fewer pairs "
                "all train).")
    which = ", ".join(f"k={run['k']} {run['kind']}{'' if run['seed'] is None else ' seed ' + str(run['seed'])}: "
                      f"{', '.join(run['val'])}" for run in validated)
    return (f"{len(validated)} of {len(runs)} U-Net runs validated on picked frames and trained on the others "
            f"({which}); the rest trained on all their picked frames, with no early stopping.")


def markdown(results: dict, command: str) -> str:
    """The results page."""
    lines = ["# Human in the loop on the real spheroids", "",
             "Written by `benchmarks/human_in_the_loop.py` (do not edit by hand).", "",
             f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()}, "
             f"{torch.get_num_threads()} torch threads, CPU; command `{command}`.",
             f"Model: `{results['model']}`. Load average before {tuple(round(x, 2) for x in results['load_before'])}, "
             f"after {tuple(round(x, 2) for x in results['load_after'])} (shared 2-core machine, run niced).",
             ("Scale: native (the files carry no pixel size; the U-Net sees them at 0.755 um/px, 2.6x finer than "
              "its card's 2 um/px)." if results.get("pixel_size_um") is None else
              f"Scale: the spheroids declared {results['pixel_size_um']} um/px, so the U-Net predicts and fine-tunes "
              "at its card's 2 um/px (resampled, probabilities resampled back), as the workflow does with "
              "`ingest.pixel_size_um` set; the forest and Otsu work on the native images."), "",
             "Model before fine-tuning, IoU (p > 0.5) and uncertain share per image:", "",
             _row("image", "default IoU", "uncertain share"), _row("---", "---", "---")]
    lines += [_row(n, f"{results['default_iou'][n]:.4f}", f"{results['uncertain'][n]:.4f}") for n in NAMES]
    lines += ["", "## Proposed vs random picks (U-Net, `spheroseg train --recipe finetune`)", "",
              _row("k", "picks", "frames picked", "mean IoU held-out (before)", "mean IoU held-out (after)",
                   "epochs (best)", "train wall s", "train CPU s"), _row(*["---"] * 8)]
    for run in results["runs"]:
        label = "proposed" if run["kind"] == "proposed" else f"random seed {run['seed']}"
        lines.append(_row(run["k"], label, ", ".join(run["picks"]), f"{run['before_mean_iou']:.4f}",
                          f"{run['mean_iou']:.4f}", f"{run['epochs']} ({run['best_epoch']})",
                          f"{run['wall_s']:.0f}", f"{run['cpu_s']:.0f}"))
    lines += ["", _row("k", "proposed mean IoU", "random mean IoU (3 seeds)", "proposed beats random"),
              _row("---", "---", "---", "---")]
    for k in sorted({run["k"] for run in results["runs"]}):
        mine = [r["mean_iou"] for r in results["runs"] if r["k"] == k and r["kind"] == "proposed"][0]
        rand = [r["mean_iou"] for r in results["runs"] if r["k"] == k and r["kind"] == "random"]
        verdict = ("yes" if mine > np.mean(rand) else "**no**") if len(rand) == len(SEEDS) else "not finished"
        lines.append(_row(k, f"{mine:.4f}", f"{np.mean(rand):.4f} ({len(rand)} of {len(SEEDS)} seeds)"
                          if rand else "-", verdict))
    lines += ["", "## Peers on the proposed frames, same held-out images", "",
              _row("k", "method", "mean IoU", "per image", "train wall s", "train CPU s"), _row(*["---"] * 6)]
    for forest, otsu in zip(results["forest"], results["otsu"], strict=True):
        unet = [r for r in results["runs"] if r["k"] == forest["k"] and r["kind"] == "proposed"][0]
        per = lambda ious: ", ".join(f"{n.replace('spheroid', 's')} {v:.3f}" for n, v in ious.items())  # noqa: E731
        lines += [_row(forest["k"], "U-Net finetune", f"{unet['mean_iou']:.4f}", per(unet["ious"]),
                       f"{unet['wall_s']:.0f}", f"{unet['cpu_s']:.0f}"),
                  _row(forest["k"], "random forest", f"{forest['mean_iou']:.4f}", per(forest["ious"]),
                       f"{forest['train_wall_s']:.0f}", f"{forest['train_cpu_s']:.0f}"),
                  _row(forest["k"], "Otsu", f"{np.mean(list(otsu['ious'].values())):.4f}", per(otsu["ious"]), "0", "0")]
    lines += ["", _row("k", "U-Net mean IoU >= forest", "U-Net train CPU s <= 180"), _row("---", "---", "---")]
    for forest in results["forest"]:
        unet = [r for r in results["runs"] if r["k"] == forest["k"] and r["kind"] == "proposed"][0]
        lines.append(_row(forest["k"], "yes" if unet["mean_iou"] >= forest["mean_iou"] else "**no**",
                          "yes" if unet["cpu_s"] <= 180 else "**no**"))
    lines += ["", "Notes: proposed and random picks leave different images out, so their means compare "
              "different images; the peers are fitted on the proposed picks and scored on the same held-out "
              "images as the U-Net. " + validation_note(results["runs"]) + " The forest uses every picked frame. "
              "The forest is fitted on 20,000 randomly sampled labelled pixels per picked image "
              "(all pixels would take far longer); its time is fitting only (features included), not "
              "predicting the held-out images. Train CPU s is user + system time of the training process "
              "(2 torch threads), the robust figure on a loaded machine; train wall s there grows with the load. "
              "U-Net IoU: probability > 0.5, no post-processing; Otsu: threshold per held-out image."]
    return "\n".join(lines) + "\n"


def side_benchmark(parser: argparse.ArgumentParser, output: Path, markdown) -> tuple[argparse.Namespace, dict, dict]:
    """The shared start of the benchmarks beside this one (``finetune_recipe_sweep.py``,
    ``human_in_the_loop_seeds.py``): adds ``--model`` (default ``models/synthetic.pt``), ``--output``
    (default `output`) and ``--from-json`` to `parser` and parses; with ``--from-json`` rewrites the
    page from the .json beside it with `markdown` and exits; exits if the spheroids are absent.
    Returns (arguments, the spheroid data, the results' header: command, model, machine, start, load)."""
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "synthetic.pt")
    parser.add_argument("--output", type=Path, default=output)
    parser.add_argument("--from-json", action="store_true", help="only rewrite the .md from the .json beside it")
    args = parser.parse_args()
    if args.from_json:
        args.output.write_text(markdown(json.loads(args.output.with_suffix(".json").read_text())))
        sys.exit(0)
    if not DATA.is_dir():
        sys.exit(f"skipped: {DATA} is absent")
    header = {"command": " ".join(["python", *sys.argv]), "model": str(args.model),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_before": os.getloadavg()}
    return args, load_data(), header


def page_writer(output: Path, markdown):
    """save(results, finished=False): write `results` as OUTPUT.json and OUTPUT.md (the page by
    `markdown`); with `finished` stamp the end time first and print the page's path."""
    def save(results: dict, finished: bool = False) -> None:
        if finished:
            results["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        output.with_suffix(".json").write_text(json.dumps(results, indent=1))
        output.write_text(markdown(results))
        if finished:
            print(output)
    return save


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "synthetic.pt")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "human_in_the_loop_results.md")
    parser.add_argument("--k", type=int, nargs="+", default=list(KS), help="k values, run in this order")
    parser.add_argument("--seeds", type=int, nargs="*", default=list(SEEDS),
                        help="seeds of the random picks (none: proposed picks and peers only; the table then "
                             "says the comparison is not finished)")
    parser.add_argument("--from-json", action="store_true", help="only rewrite the .md from the .json beside it")
    parser.add_argument("--pixel-size-um", type=float,
                        help="declare the spheroids' pixel size (0.75488): the U-Net predicts and fine-tunes at its "
                             "card's pixel size, as the workflow does with ingest.pixel_size_um set; default: "
                             "native scale (the files carry no pixel size)")
    args = parser.parse_args()
    global PIXEL_SIZE_UM
    PIXEL_SIZE_UM = args.pixel_size_um
    if not DATA.is_dir():
        sys.exit(f"skipped: {DATA} is absent")
    command = " ".join(["python", *sys.argv])
    if args.from_json:
        results = json.loads(args.output.with_suffix(".json").read_text())
        args.output.write_text(markdown(results, results.get("command", command)))
        return

    def save(results: dict) -> None:
        results = results | {"command": command}
        args.output.with_suffix(".json").write_text(json.dumps(results, indent=1, default=float))
        args.output.write_text(markdown(results, command))

    run_all(args.model, load_data(), tuple(args.k), tuple(args.seeds), save)
    print(args.output)


if __name__ == "__main__":
    main()
