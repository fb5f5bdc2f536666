"""``spheroseg train``: train or fine-tune the U-Net on annotation pairs and export it."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path

LOGGER = logging.getLogger("spheroseg.training")
#: ``spheroseg.synthetic.TRAINING_MODALITIES`` and ``spheroseg.normalization.NORMALIZATION_KINDS``,
#: repeated so that building the parser imports neither (tests keep them equal).
TRAINING_MODALITIES = ("fluorescence", "invasive", "brightfield", "phase")
NORMALIZATION_KINDS = ("percentile", "robust", "zscore", "none")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand."""
    parser = subparsers.add_parser(
        "train", help="train a U-Net on image/mask pairs; write NAME.pt, NAME.json, log and learning curve",
        description="Train (or fine-tune) the U-Net on annotation pairs: DIR/images/X + DIR/masks/X "
                    "(or DIR/labels/X), or DIR/X + DIR/X_mask (TIFF or PNG). Writes NAME.pt (TorchScript), "
                    "NAME.json (model card), NAME.training_log.csv and NAME.learning_curve.png.")
    data = parser.add_argument_group("data")
    data.add_argument("--annotations", type=Path, nargs="+", default=[], metavar="DIR",
                      help="annotation folder(s); several are combined (pair names must be unique; a folder may "
                           "be repeated with another --annotation-pixel-size-um to train on it at two scales)")
    data.add_argument("--annotation-pixel-size-um", type=float, nargs="+", default=[], metavar="UM",
                      help="pixel size of the annotation images, one for all folders or one per folder: they "
                           "are resampled to --pixel-size-um (default: used as they are)")
    data.add_argument("--synthetic", type=int, metavar="N",
                      help="add N synthetic pairs from spheroseg.synthetic (drawn at 2 um/px)")
    data.add_argument("--synthetic-size", type=int, default=256, metavar="PX", help="side of synthetic images")
    data.add_argument("--synthetic-modalities", nargs="+", choices=TRAINING_MODALITIES, metavar="KIND",
                      help=f"render synthetic pairs in these modalities in turn ({', '.join(TRAINING_MODALITIES)}; "
                           "default: the demo's rendering)")
    data.add_argument("--synthetic-dir", type=Path, help="keep the synthetic pairs in this new or empty folder")
    data.add_argument("--mask-kind", choices=("auto", "binary", "labels"), default="auto",
                      help="binary: only 0/1 or 0/255 allowed; labels/auto: every value > 0 is foreground")
    data.add_argument("--allow-empty-masks", action="store_true", help="accept masks without foreground")
    split = data.add_mutually_exclusive_group()
    split.add_argument("--val-fraction", type=float, default=0.2, help="random share of pairs for validation")
    split.add_argument("--val-names", nargs="+", default=(), metavar="NAME", help="validation pairs by name")
    model = parser.add_argument_group("model")
    model.add_argument("--output", type=Path, required=True, help="model file to write, e.g. models/NAME.pt")
    model.add_argument("--init", type=Path, help="fine-tune this exported model (NAME.pt with NAME.json)")
    model.add_argument("--depth", type=int, default=3, help="U-Net downsamplings")
    model.add_argument("--base-width", type=int, default=16, help="channels of the first U-Net level")
    model.add_argument("--normalization", choices=NORMALIZATION_KINDS, default="percentile",
                       help="percentile: (x - p_low) / (p_high - p_low); robust: the same with the top at least "
                            "the brightest block mean (sparse fields) and, with --polarity auto, dark objects "
                            "negated first (docs/training.md)")
    model.add_argument("--percentiles", type=float, nargs=2, default=(1.0, 99.8), metavar=("LOW", "HIGH"))
    model.add_argument("--normalization-block", type=int, default=8, metavar="PX",
                       help="block side of the robust normalisation")
    model.add_argument("--polarity", choices=("auto", "bright"), default="auto",
                       help="robust normalisation: auto negates images whose objects are darker than the background")
    model.add_argument("--pixel-size-um", type=float, help="pixel size of the annotations (recorded in the card)")
    _add_optimisation(parser)


def _add_optimisation(parser: argparse.ArgumentParser) -> None:
    """Optimisation and augmentation options."""
    group = parser.add_argument_group("optimisation")
    group.add_argument("--epochs", type=int, default=40)
    group.add_argument("--steps-per-epoch", type=int, default=50)
    group.add_argument("--batch-size", type=int, default=8)
    group.add_argument("--patch-size", type=int, default=256)
    group.add_argument("--learning-rate", type=float, default=2e-3)
    group.add_argument("--patience", type=int, default=10, help="early-stopping epochs (0: off)")
    group.add_argument("--foreground-fraction", type=float, default=0.5, help="share of foreground-centred patches")
    group.add_argument("--sampling", choices=("area", "source"), default="area",
                       help="area: images drawn in proportion to their area; source: every annotation folder "
                            "(and the synthetic pairs) gets the same share of patches")
    group.add_argument("--border-weights", action="store_true", help="U-Net border weight maps (w0=10, sigma=5)")
    group.add_argument("--intensity-augment", choices=("full", "mild", "none"), default="full",
                       help="strength of contrast/gamma/shading/blur/noise augmentation; use mild or none when "
                            "the masks follow the brightness itself (fluorescence thresholds)")
    group.add_argument("--invert-probability", type=float, default=0.0, help="chance to invert patch contrast")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--max-minutes", type=float, help="stop training after this many minutes")
    group.add_argument("--checkpoint-dir", type=Path,
                       help="checkpoint folder (resumed from if it matches; default NAME.checkpoints, removed on success)")
    group.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    group.add_argument("--no-amp", action="store_true", help="no mixed precision on GPU")
    group.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    """Run the training job described by the parsed arguments."""
    from spheroseg.training.augment import AugmentConfig
    from spheroseg.training.loop import TrainConfig
    from spheroseg.training.pipeline import TrainingJob, run_training

    if not args.annotations and args.synthetic is None:
        raise ValueError("--annotations must be given (or --synthetic N), got neither")
    if args.output.suffix != ".pt":
        raise ValueError(f"--output must end in .pt, got {str(args.output)!r}")
    _check_sources(args)
    config = TrainConfig(
        epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, batch_size=args.batch_size,
        patch_size=args.patch_size, learning_rate=args.learning_rate, patience=args.patience,
        foreground_fraction=args.foreground_fraction, sampling=args.sampling, seed=args.seed, max_minutes=args.max_minutes,
        device=args.device, amp=not args.no_amp)
    augment = AugmentConfig.with_intensity(args.intensity_augment, p_invert=args.invert_probability)
    normalization = {"kind": args.normalization}
    if args.normalization in ("percentile", "robust"):
        normalization.update(low=args.percentiles[0], high=args.percentiles[1])
    if args.normalization == "robust":
        normalization.update(block=args.normalization_block, polarity=args.polarity)
    default_checkpoints = args.checkpoint_dir is None
    checkpoint_dir = args.checkpoint_dir or args.output.with_suffix(".checkpoints")
    with tempfile.TemporaryDirectory(prefix="spheroseg-synthetic-") as scratch:
        annotations, provenance = _annotations(args, Path(scratch))
        job = TrainingJob(
            annotations=annotations, output=args.output, init=args.init, depth=args.depth,
            base_width=args.base_width, normalization=normalization, pixel_size_um=args.pixel_size_um,
            val_fraction=args.val_fraction, val_names=tuple(args.val_names), mask_kind=args.mask_kind,
            allow_empty=args.allow_empty_masks, border_weights=args.border_weights,
            checkpoint_dir=checkpoint_dir, provenance=provenance)
        paths = run_training(job, config, augment, progress=not args.no_progress)
    if default_checkpoints:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    print("\n".join(str(p) for p in paths.values()), file=sys.stdout)


def _check_sources(args: argparse.Namespace) -> None:
    """Refuse pixel-size lists that do not match the folders, before anything is written."""
    sizes = args.annotation_pixel_size_um
    if sizes and len(sizes) not in (1, len(args.annotations)):
        raise ValueError(f"--annotation-pixel-size-um must give one value or one per --annotations folder "
                         f"({len(args.annotations)}), got {len(sizes)}: {sizes}")
    if sizes and args.pixel_size_um is None:
        raise ValueError("--pixel-size-um (the training pixel size) must be given with --annotation-pixel-size-um, "
                         "got none")
    if args.synthetic is not None and args.synthetic < 1:
        raise ValueError(f"--synthetic must be >= 1, got {args.synthetic!r}")
    folder = args.synthetic_dir
    if folder is not None and folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ValueError(f"--synthetic-dir must be a new or empty folder, got {str(folder)!r}")


def _annotations(args: argparse.Namespace, scratch: Path) -> tuple[Path | tuple, dict]:
    """What to train on: one folder as it is, or several sources (annotation folders, synthetic pairs)."""
    from spheroseg.training.data import AnnotationSource

    sizes = args.annotation_pixel_size_um or [None]
    sources = [AnnotationSource(folder, sizes[min(i, len(sizes) - 1)]) for i, folder in enumerate(args.annotations)]
    if args.synthetic is not None:
        sources.append(_synthetic_source(args, args.synthetic_dir or scratch))
    if args.synthetic is None and len(sources) == 1 and sources[0].pixel_size_um is None:
        return args.annotations[0], {}
    if args.synthetic is not None and len(sources) == 1 and args.synthetic_modalities is None:
        return sources[0].folder, {"annotations": sources[0].label}  # the original default-model recipe
    return tuple(sources), {}


def _synthetic_source(args: argparse.Namespace, folder: Path):
    """Write the synthetic pairs into `folder`; return them as a source labelled with the recipe."""
    from spheroseg.synthetic import SYNTHETIC_PIXEL_SIZE_UM, write_training_set
    from spheroseg.training.data import AnnotationSource

    shape = (args.synthetic_size, args.synthetic_size)
    modalities = None if args.synthetic_modalities is None else tuple(args.synthetic_modalities)
    LOGGER.info("writing %d synthetic training pairs of %dx%d px (seed %d)", args.synthetic, *shape, args.seed)
    write_training_set(folder, n_images=args.synthetic, shape=shape, seed=args.seed, modalities=modalities)
    recipe = f"spheroseg.synthetic.write_training_set(n_images={args.synthetic}, shape={shape}, seed={args.seed}"
    recipe += ")" if modalities is None else f", modalities={modalities})"
    pixel = SYNTHETIC_PIXEL_SIZE_UM if args.pixel_size_um is not None else None
    return AnnotationSource(folder, pixel, recipe)
