"""``spheroseg train``: train or fine-tune the U-Net on annotation pairs and export it."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path

from spheroseg.cli.arguments import add_verb, given

LOGGER = logging.getLogger("spheroseg.training")
# Options that go to TrainConfig and TrainingJob under their own names.
CONFIG_OPTIONS = ("epochs", "steps_per_epoch", "batch_size", "patch_size", "learning_rate", "patience",
                  "foreground_fraction", "seed", "max_minutes", "device", "amp")
JOB_OPTIONS = ("init", "depth", "base_width", "pixel_size_um", "val_fraction", "val_names", "mask_kind",
               "allow_empty", "border_weights")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand."""
    parser = add_verb(
        subparsers, "train", help="train a U-Net on image/mask pairs; write NAME.pt, NAME.json, log and learning curve",
        description="Train (or fine-tune) the U-Net on annotation pairs: DIR/images/X + DIR/masks/X "
                    "(or DIR/labels/X), or DIR/X + DIR/X_mask (TIFF or PNG). Writes NAME.pt (TorchScript), "
                    "NAME.json (model card), NAME.training_log.csv and NAME.learning_curve.png.")
    data = parser.add_argument_group("data")
    data.add_argument("--annotations", type=Path, help="annotation folder (with --synthetic: where to write it)")
    data.add_argument("--synthetic", type=int, metavar="N",
                      help="train on N synthetic pairs from spheroseg.synthetic (the default model's recipe)")
    data.add_argument("--synthetic-size", type=int, metavar="PX", help="side of synthetic images")
    data.add_argument("--mask-kind", help="auto, binary or labels; binary: only 0/1 or 0/255 allowed; "
                      "labels/auto: every value > 0 is foreground")
    data.add_argument("--allow-empty-masks", dest="allow_empty", action="store_true",
                      help="accept masks without foreground")
    split = data.add_mutually_exclusive_group()
    split.add_argument("--val-fraction", type=float, help="random share of pairs for validation")
    split.add_argument("--val-names", nargs="+", type=str, metavar="NAME", help="validation pairs by name")
    model = parser.add_argument_group("model")
    model.add_argument("--output", type=Path, required=True, help="model file to write, e.g. models/NAME.pt")
    model.add_argument("--init", type=Path, help="fine-tune this exported model (NAME.pt with NAME.json)")
    model.add_argument("--recipe", help="custom (the settings given) or finetune (few short epochs from --init, "
                       "lower learning rate, mild intensity augmentation, patience 3; options given win)")
    model.add_argument("--depth", type=int, help="U-Net downsamplings")
    model.add_argument("--base-width", type=int, help="channels of the first U-Net level")
    model.add_argument("--normalization", help="percentile, zscore or none (as the model card records it)")
    model.add_argument("--percentiles", type=float, nargs=2, metavar=("LOW", "HIGH"),
                       help="with --normalization percentile: the percentiles mapped to 0 and 1")
    model.add_argument("--pixel-size-um", type=float, help="pixel size of the annotations (recorded in the card)")
    _add_optimisation(parser)


def _add_optimisation(parser: argparse.ArgumentParser) -> None:
    """Optimisation and augmentation options."""
    group = parser.add_argument_group("optimisation")
    for flag, kind, text in (
        ("--epochs", int, "most epochs"), ("--steps-per-epoch", int, "optimiser steps per epoch"),
        ("--batch-size", int, "patches per step"), ("--patch-size", int, "training patch side in pixels"),
        ("--learning-rate", float, "peak learning rate"), ("--patience", int, "early-stopping epochs (0: off)"),
        ("--foreground-fraction", float, "share of foreground-centred patches"),
    ):
        group.add_argument(flag, type=kind, help=text)
    group.add_argument("--border-weights", action="store_true", help="U-Net border weight maps (w0=10, sigma=5)")
    group.add_argument("--intensity-augment", dest="level",
                       help="full, mild or none: strength of contrast/gamma/shading/blur/noise augmentation; "
                            "use mild or none when the masks follow the brightness itself (fluorescence thresholds)")
    group.add_argument("--invert-probability", dest="p_invert", type=float, help="chance to invert patch contrast")
    group.add_argument("--seed", type=int, help="seed of data split, patches and weights")
    group.add_argument("--max-minutes", type=float, help="stop training after this many minutes")
    group.add_argument("--checkpoint-dir", type=Path,
                       help="checkpoint folder (resumed from if it matches; default NAME.checkpoints, removed on success)")
    group.add_argument("--device", help="auto, cpu, cuda, cuda:1, ...")
    group.add_argument("--no-amp", dest="amp", action="store_false", help="no mixed precision on GPU")
    group.add_argument("--no-progress", dest="progress", action="store_false",
                       help="no progress bar or progress lines")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    """Run the training job described by the parsed arguments."""
    from spheroseg.training.augment import AugmentConfig
    from spheroseg.training.loop import TrainConfig
    from spheroseg.training.pipeline import TrainingJob, run_training
    from spheroseg.training.recipes import recipe_settings

    if not hasattr(args, "annotations") and not hasattr(args, "synthetic"):
        raise ValueError("--annotations must be given (or --synthetic N), got neither")
    if args.output.suffix != ".pt":
        raise ValueError(f"--output must end in .pt, got {str(args.output)!r}")
    recipe = recipe_settings(**given(args, ["recipe"]), init=getattr(args, "init", None))
    config = TrainConfig(**({k: v for k, v in recipe.items() if k != "level"} | given(args, CONFIG_OPTIONS)))
    augment = AugmentConfig.with_intensity(**({k: v for k, v in recipe.items() if k == "level"}
                                              | given(args, ("level", "p_invert"))))
    default_checkpoints = not hasattr(args, "checkpoint_dir")
    checkpoint_dir = getattr(args, "checkpoint_dir", args.output.with_suffix(".checkpoints"))
    with tempfile.TemporaryDirectory(prefix="spheroseg-synthetic-") as scratch:
        annotations, provenance = _annotations(args, Path(scratch), seed=config.seed)
        options = given(args, JOB_OPTIONS) | _normalization(args)
        if "val_names" in options:
            options["val_names"] = tuple(options["val_names"])
        job = TrainingJob(annotations=annotations, output=args.output, checkpoint_dir=checkpoint_dir,
                          provenance=provenance | given(args, ["recipe"]), **options)
        paths = run_training(job, config, augment, **given(args, ["progress"]))
    if default_checkpoints:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    print("\n".join(str(p) for p in paths.values()), file=sys.stdout)


def _normalization(args: argparse.Namespace) -> dict:
    """``{"normalization": spec}`` when --normalization or --percentiles is given, else nothing."""
    from spheroseg.normalization import validate_normalization

    if not hasattr(args, "normalization") and not hasattr(args, "percentiles"):
        return {}
    # --percentiles alone means percentile normalisation with those percentiles.
    spec = {"kind": args.normalization if hasattr(args, "normalization") else "percentile"}
    if hasattr(args, "percentiles"):
        spec.update(low=args.percentiles[0], high=args.percentiles[1])
    return {"normalization": validate_normalization(spec, source="--normalization/--percentiles")}


def _annotations(args: argparse.Namespace, scratch: Path, *, seed: int) -> tuple[Path, dict]:
    """The annotation folder to train on, writing synthetic data first if asked."""
    if not hasattr(args, "synthetic"):
        return args.annotations, {}
    from spheroseg.synthetic import TRAINING_SHAPE, write_training_set

    folder = getattr(args, "annotations", scratch)
    if folder.exists() and any(folder.iterdir()):
        raise ValueError(f"--annotations must be a new or empty folder with --synthetic, got {str(folder)!r}")
    shape = (args.synthetic_size, args.synthetic_size) if hasattr(args, "synthetic_size") else TRAINING_SHAPE
    LOGGER.info("writing %d synthetic training pairs of %dx%d px (seed %d)", args.synthetic, *shape, seed)
    write_training_set(folder, n_images=args.synthetic, shape=shape, seed=seed)
    recipe = f"spheroseg.synthetic.write_training_set(n_images={args.synthetic}, shape={shape}, seed={seed})"
    return folder, {"annotations": recipe}
