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
#: ``spheroseg.synthetic.SYNTHETIC_KINDS`` and ``spheroseg.normalization.NORMALIZATION_KINDS``,
#: repeated so that building the parser imports neither (tests keep them equal).
SYNTHETIC_KINDS = ("demo", "fluorescence", "invasive", "brightfield", "phase")
NORMALIZATION_KINDS = ("percentile", "robust", "zscore", "none")
# Options that go to TrainConfig and TrainingJob under their own names.
CONFIG_OPTIONS = ("epochs", "steps_per_epoch", "batch_size", "patch_size", "learning_rate", "patience",
                  "foreground_fraction", "sampling", "seed", "max_minutes", "device", "amp", "frozen_norm",
                  "channels_last")
JOB_OPTIONS = ("init", "depth", "base_width", "pixel_size_um", "val_fraction", "val_names", "val_min_pairs",
               "mask_kind", "allow_empty", "border_weights", "normalization_scope")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand."""
    parser = add_verb(
        subparsers, "train", help="train a U-Net on image/mask pairs; write NAME.pt, NAME.json, log and learning curve",
        description="Train (or fine-tune) the U-Net on annotation pairs: DIR/images/X + DIR/masks/X "
                    "(or DIR/labels/X), or DIR/X + DIR/X_mask (TIFF or PNG). Writes NAME.pt (TorchScript), "
                    "NAME.json (model card), NAME.training_log.csv and NAME.learning_curve.png.")
    data = parser.add_argument_group("data")
    data.add_argument("--annotations", type=Path, nargs="+", metavar="DIR",
                      help="annotation folder(s); several are combined (pair names must be unique; a folder may "
                           "be repeated with another --annotation-pixel-size-um to train on it at two scales)")
    data.add_argument("--annotation-pixel-size-um", type=float, nargs="+", metavar="UM",
                      help="pixel size of the annotation images, one for all folders or one per folder: they "
                           "are resampled to --pixel-size-um (default: used as they are)")
    data.add_argument("--synthetic", type=int, metavar="N",
                      help="add N synthetic pairs from spheroseg.synthetic (drawn at 2 um/px)")
    data.add_argument("--synthetic-size", type=int, metavar="PX", help="side of synthetic images")
    data.add_argument("--synthetic-modalities", nargs="+", choices=SYNTHETIC_KINDS, metavar="KIND",
                      help=f"render synthetic pairs in these kinds in turn ({', '.join(SYNTHETIC_KINDS)}; demo: "
                           "the demo's rendering, debris as background; a kind named twice gets twice the "
                           "frames; default: demo only, the original recipe)")
    data.add_argument("--synthetic-dir", type=Path, help="keep the synthetic pairs in this new or empty folder")
    data.add_argument("--mask-kind", help="auto, binary or labels; binary: only 0/1 or 0/255 allowed; "
                      "labels/auto: every value > 0 is foreground")
    data.add_argument("--allow-empty-masks", dest="allow_empty", action="store_true",
                      help="accept masks without foreground")
    split = data.add_mutually_exclusive_group()
    split.add_argument("--val-fraction", type=float, help="random share of pairs for validation")
    split.add_argument("--val-names", nargs="+", type=str, metavar="NAME", help="validation pairs by name")
    data.add_argument("--val-min-pairs", type=int, metavar="N",
                      help="hold out --val-fraction only when there are N pairs or more; fewer all train, for "
                           "the whole schedule (no early stopping)")
    model = parser.add_argument_group("model")
    model.add_argument("--output", type=Path, required=True, help="model file to write, e.g. models/NAME.pt")
    model.add_argument("--init", type=Path, help="fine-tune this exported model (NAME.pt with NAME.json)")
    model.add_argument("--recipe", help="custom (the settings given) or finetune (few short epochs from --init, "
                       "lower learning rate, mild intensity augmentation, patience 3; options given win)")
    model.add_argument("--depth", type=int, help="U-Net downsamplings")
    model.add_argument("--base-width", type=int, help="channels of the first U-Net level")
    model.add_argument("--normalization", choices=NORMALIZATION_KINDS,
                       help="percentile: (x - p_low) / (p_high - p_low); robust: the same with the top at least "
                            "the brightest block mean (sparse fields) and, with --polarity auto, dark objects "
                            "negated first (docs/training.md); zscore; none")
    model.add_argument("--percentiles", type=float, nargs=2, metavar=("LOW", "HIGH"),
                       help="with --normalization percentile or robust: the percentiles mapped to 0 and 1")
    model.add_argument("--normalization-block", type=int, metavar="PX", help="block side of the robust normalisation")
    model.add_argument("--polarity", choices=("auto", "bright"),
                       help="robust normalisation: auto negates images whose objects are darker than the background")
    model.add_argument("--normalization-scope", choices=("image", "series"),
                       help="series: one window per time series (pairs written by propose carry their "
                            "position's; predict computes it over all frames); image: one per frame "
                            "(default: the normalisation's own, recipe finetune: series)")
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
    group.add_argument("--sampling", choices=("area", "source"),
                       help="area: images drawn in proportion to their area; source: every annotation folder "
                            "(and the synthetic pairs) gets the same share of patches")
    group.add_argument("--frozen-norm", action=argparse.BooleanOptionalAction,
                       help="keep the batch-norm statistics of the --init model (scale and shift still train): "
                            "small fine-tuning batches give noisy ones")
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
    group.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                       help="train with NCHW-strided tensors (default: NHWC, the faster convolution layout)")
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
    _check_sources(args)
    recipe = recipe_settings(**given(args, ["recipe"]), init=getattr(args, "init", None))
    config = TrainConfig(**({k: v for k, v in recipe.items() if k in TrainConfig.__dataclass_fields__}
                            | given(args, CONFIG_OPTIONS)))
    augment = AugmentConfig.with_intensity(**({k: v for k, v in recipe.items() if k == "level"}
                                              | given(args, ("level", "p_invert"))))
    default_checkpoints = not hasattr(args, "checkpoint_dir")
    checkpoint_dir = getattr(args, "checkpoint_dir", args.output.with_suffix(".checkpoints"))
    with tempfile.TemporaryDirectory(prefix="spheroseg-synthetic-") as scratch:
        annotations, provenance = _annotations(args, Path(scratch), seed=config.seed)
        options = ({k: v for k, v in recipe.items() if k in JOB_OPTIONS} | given(args, JOB_OPTIONS)
                   | _normalization(args))
        if "val_names" in options:
            options["val_names"] = tuple(options["val_names"])
        job = TrainingJob(annotations=annotations, output=args.output, checkpoint_dir=checkpoint_dir,
                          provenance=provenance | given(args, ["recipe"]), **options)
        paths = run_training(job, config, augment, **given(args, ["progress"]))
    if default_checkpoints:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    print("\n".join(str(p) for p in paths.values()), file=sys.stdout)


def _normalization(args: argparse.Namespace) -> dict:
    """``{"normalization": spec}`` when a normalisation option is given, else nothing."""
    from spheroseg.normalization import validate_normalization

    if not any(hasattr(args, name) for name in ("normalization", "percentiles", "normalization_block", "polarity")):
        return {}
    # --percentiles alone means percentile normalisation with those percentiles.
    spec = {"kind": args.normalization if hasattr(args, "normalization") else "percentile"}
    if hasattr(args, "percentiles"):
        spec.update(low=args.percentiles[0], high=args.percentiles[1])
    spec |= {key: getattr(args, name) for name, key in (("normalization_block", "block"), ("polarity", "polarity"))
             if hasattr(args, name)}
    return {"normalization": validate_normalization(spec, source="--normalization/--percentiles")}


def _check_sources(args: argparse.Namespace) -> None:
    """Refuse pixel-size lists that do not match the folders, before anything is written."""
    sizes, folders = getattr(args, "annotation_pixel_size_um", []), getattr(args, "annotations", [])
    if sizes and len(sizes) not in (1, len(folders)):
        raise ValueError(f"--annotation-pixel-size-um must give one value or one per --annotations folder "
                         f"({len(folders)}), got {len(sizes)}: {sizes}")
    if sizes and not hasattr(args, "pixel_size_um"):
        raise ValueError("--pixel-size-um (the training pixel size) must be given with --annotation-pixel-size-um, "
                         "got none")
    if hasattr(args, "synthetic") and args.synthetic < 1:
        raise ValueError(f"--synthetic must be >= 1, got {args.synthetic!r}")
    folder = getattr(args, "synthetic_dir", None)
    if folder is not None and folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ValueError(f"--synthetic-dir must be a new or empty folder, got {str(folder)!r}")


def _annotations(args: argparse.Namespace, scratch: Path, *, seed: int) -> tuple[Path | tuple, dict]:
    """What to train on: one folder as it is, or several sources (annotation folders, synthetic pairs)."""
    from spheroseg.training.data import AnnotationSource

    folders = getattr(args, "annotations", [])
    sizes = getattr(args, "annotation_pixel_size_um", None) or [None]
    sources = [AnnotationSource(folder, sizes[min(i, len(sizes) - 1)]) for i, folder in enumerate(folders)]
    if hasattr(args, "synthetic"):
        sources.append(_synthetic_source(args, getattr(args, "synthetic_dir", scratch), seed=seed))
    if not hasattr(args, "synthetic") and len(sources) == 1 and sources[0].pixel_size_um is None:
        return folders[0], {}
    if hasattr(args, "synthetic") and len(sources) == 1 and not hasattr(args, "synthetic_modalities"):
        return sources[0].folder, {"annotations": sources[0].label}  # the original default-model recipe
    return tuple(sources), {}


def _synthetic_source(args: argparse.Namespace, folder: Path, *, seed: int):
    """Write the synthetic pairs into `folder`; return them as a source labelled with the recipe."""
    from spheroseg.synthetic import SYNTHETIC_PIXEL_SIZE_UM, TRAINING_SHAPE, write_training_set
    from spheroseg.training.data import AnnotationSource

    shape = (args.synthetic_size, args.synthetic_size) if hasattr(args, "synthetic_size") else TRAINING_SHAPE
    modalities = tuple(args.synthetic_modalities) if hasattr(args, "synthetic_modalities") else None
    LOGGER.info("writing %d synthetic training pairs of %dx%d px (seed %d)", args.synthetic, *shape, seed)
    write_training_set(folder, n_images=args.synthetic, shape=shape, seed=seed, modalities=modalities)
    recipe = f"spheroseg.synthetic.write_training_set(n_images={args.synthetic}, shape={shape}, seed={seed}"
    recipe += ")" if modalities is None else f", modalities={modalities})"
    pixel = SYNTHETIC_PIXEL_SIZE_UM if hasattr(args, "pixel_size_um") else None
    return AnnotationSource(folder, pixel, recipe)
