"""One source of truth per parameter.

A parameter's default and range live in the workflow schema and in the library (option
dataclasses and keyword defaults). ``config/config.yaml`` shows the schema defaults, the two
agree wherever a key has a library counterpart, the command line restates no default, and every
option of a verb the workflow runs can be set from the config.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from spheroseg.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text(encoding="utf-8"))
CONFIG = yaml.safe_load((ROOT / "config/config.yaml").read_text(encoding="utf-8"))


def schema_defaults(schema: dict[str, Any]) -> dict[str, Any]:
    """The config the schema's defaults make (nested sections as dicts)."""
    return {key: schema_defaults(spec) if "properties" in spec else spec["default"]
            for key, spec in schema["properties"].items()}


def schema_keys(schema: dict[str, Any], prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    """(dotted key, spec) of every leaf key."""
    keys = []
    for key, spec in schema["properties"].items():
        name = f"{prefix}{key}"
        keys += schema_keys(spec, f"{name}.") if "properties" in spec else [(name, spec)]
    return keys


def config_value(key: str) -> Any:
    section, _, name = key.partition(".")
    return CONFIG[section][name] if name else CONFIG[section]


@pytest.mark.parametrize(("key", "spec"), schema_keys(SCHEMA), ids=[key for key, _ in schema_keys(SCHEMA)])
def test_every_schema_key_has_a_default_and_a_description(key, spec):
    assert "default" in spec and spec.get("description"), key


#: JSON-schema keywords the config schema uses; any other key in a spec is a YAML slip (an
#: unquoted comma in a flow mapping cut a description and made its tail a key).
SCHEMA_KEYWORDS = {"type", "default", "description", "minimum", "maximum", "exclusiveMinimum",
                   "exclusiveMaximum", "enum", "items", "minItems", "maxItems", "pattern",
                   "additionalProperties", "properties", "required", "minLength", "uniqueItems",
                   "minProperties", "oneOf", "anyOf"}


@pytest.mark.parametrize(("key", "spec"), schema_keys(SCHEMA), ids=[key for key, _ in schema_keys(SCHEMA)])
def test_every_schema_key_uses_only_schema_keywords(key, spec):
    assert set(spec) <= SCHEMA_KEYWORDS, (key, sorted(set(spec) - SCHEMA_KEYWORDS))


def test_config_yaml_shows_exactly_the_schema_defaults():
    assert CONFIG == schema_defaults(SCHEMA)


def field_default(cls: type, name: str) -> Any:
    """Default of a dataclass field."""
    field = {field.name: field for field in dataclasses.fields(cls)}[name]
    return field.default if field.default is not dataclasses.MISSING else field.default_factory()


def keyword_default(function: Callable[..., Any], name: str) -> Any:
    """Default of a keyword argument."""
    return inspect.signature(function).parameters[name].default


def library_defaults() -> dict[str, Any]:
    """Config key -> the library's default for the same parameter."""
    from spheroseg.inference import plan_for_image, predict_tiles, stitch_tiles
    from spheroseg.ingest import PhysicalSizes, discover_positions, ingest_position
    from spheroseg.measure import measure_store
    from spheroseg.report.build import position_qc_table, position_report
    from spheroseg.segmentation import SegmentationOptions
    from spheroseg.synthetic import write_demo_experiment
    from spheroseg.training.augment import AugmentConfig
    from spheroseg.training.loop import TrainConfig
    from spheroseg.training.pipeline import DEFAULT_NORMALIZATION, TrainingJob
    from spheroseg.training.recipes import recipe_settings
    from spheroseg.propose import propose_frames

    defaults = {f"segment.{field.name}": field_default(SegmentationOptions, field.name)
                for field in dataclasses.fields(SegmentationOptions)}
    defaults |= {f"training.{name}": field_default(TrainConfig, name) for name in (
        "epochs", "steps_per_epoch", "batch_size", "patch_size", "learning_rate", "patience",
        "foreground_fraction", "seed", "max_minutes", "device", "amp", "frozen_norm", "channels_last")}
    defaults |= {f"training.{name}": field_default(TrainingJob, name) for name in (
        "init", "depth", "base_width", "pixel_size_um", "val_fraction", "val_min_pairs", "mask_kind",
        "border_weights")}
    defaults |= {
        "training.val_names": list(field_default(TrainingJob, "val_names")),
        "training.allow_empty_masks": field_default(TrainingJob, "allow_empty"),
        "training.normalization": DEFAULT_NORMALIZATION["kind"],
        "training.percentiles": [DEFAULT_NORMALIZATION["low"], DEFAULT_NORMALIZATION["high"]],
        "training.intensity_augment": keyword_default(AugmentConfig.with_intensity, "level"),
        "training.invert_probability": keyword_default(AugmentConfig.with_intensity, "p_invert"),
        "training.recipe": keyword_default(recipe_settings, "recipe"),
        "propose.n": keyword_default(propose_frames, "n"),
        "ingest.pattern": keyword_default(discover_positions, "pattern"),
        "ingest.pyramid": keyword_default(ingest_position, "pyramid"),
        "ingest.workers": keyword_default(ingest_position, "workers"),
        "ingest.channel": keyword_default(predict_tiles, "channel"),
        "tiling.tile_size": keyword_default(plan_for_image, "tile_size"),
        "tiling.overlap": keyword_default(plan_for_image, "overlap"),
        "predict.rescale": keyword_default(plan_for_image, "rescale"),
        "stitch.window": keyword_default(stitch_tiles, "window"),
        "stitch.dtype": keyword_default(stitch_tiles, "dtype"),
        "measure.smoothing": keyword_default(measure_store, "smoothing"),
        "report.area_jump_fraction": keyword_default(position_qc_table, "area_jump_fraction"),
        "report.uncertain_fraction": keyword_default(position_qc_table, "uncertain_fraction"),
        "report.gif_frame_ms": keyword_default(position_report, "frame_ms"),
        "demo.positions": dict(keyword_default(write_demo_experiment, "positions")),
        "demo.timepoints": keyword_default(write_demo_experiment, "n_timepoints"),
        "demo.size": list(keyword_default(write_demo_experiment, "shape")),
    }
    defaults |= {f"ingest.{field.name}": field_default(PhysicalSizes, field.name)
                 for field in dataclasses.fields(PhysicalSizes)}
    defaults |= {f"predict.{name}": keyword_default(predict_tiles, name)
                 for name in ("device", "precision", "batch_size", "channels_last")}
    defaults |= {f"report.{name}": keyword_default(position_report, name)
                 for name in ("montage_frames", "gif_frames", "gif_size")}
    defaults |= {f"demo.{name}": keyword_default(write_demo_experiment, name)
                 for name in ("seed", "pixel_size_um", "time_interval_s", "artefact")}
    return defaults


# Where the workflow deliberately chooses another default than the library, and why.
WORKFLOW_CHOICES = {
    "segment.min_area_um2": "a physical minimum suits spheroids; the library must also work on "
                            "images without a pixel size, where a size in µm² cannot apply",
    "training.recipe": "the workflow's human-in-the-loop fine-tunes the current model briefly; the "
                       "library trains exactly with the settings it is given",
}


@pytest.mark.parametrize(("key", "library"), sorted(library_defaults().items()),
                         ids=sorted(library_defaults()))
def test_schema_default_equals_the_library_default(key, library):
    workflow = config_value(key)
    if key in WORKFLOW_CHOICES:
        assert workflow != library, f"{key} agrees again: drop it from WORKFLOW_CHOICES"
    else:
        assert workflow == library


def verb_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every (sub)command parser of ``spheroseg``, by its command line, e.g. ``report qc``."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    found[f"{prefix}{name}"] = child
                    walk(child, f"{prefix}{name} ")

    walk(build_parser(), "")
    return found


def optional_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [action for action in parser._actions if action.option_strings and not action.required
            and not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))]


@pytest.mark.parametrize("verb", sorted(verb_parsers()))
def test_cli_restates_no_default(verb):
    # An option the user leaves out is absent, so the library's default applies.
    restated = {action.dest: action.default for action in optional_actions(verb_parsers()[verb])
                if action.default is not argparse.SUPPRESS}
    assert restated == {}


# CLI options of the verbs the workflow runs, by config key where the names differ; None:
# deliberately not in the config, for the reason given.
CONFIG_NAMES = {
    ("ingest", "pattern"): "ingest.pattern",
    ("tile", "rescale"): "predict.rescale",  # the plan is made for the grid predict runs on
    ("predict", "channel"): "ingest.channel",
    ("measure", "channel"): "ingest.channel",
    ("report position", "channel"): "ingest.channel",
    ("measure", "threshold"): None,  # measure traces at the threshold segment recorded
    ("segment", "threads"): None,  # the rule's threads: (Snakemake --cores, profiles)
    ("measure", "threads"): None,
    ("segment", "record"): None,  # an output file (the rule passes segment.json)
    ("report qc", "image"): None,  # an input file (the rule passes image.ome.zarr)
    ("report qc", "labels"): None,  # an input (the rule passes image.ome.zarr/labels/segmentation)
    ("report position", "frame_ms"): "report.gif_frame_ms",
    ("train", "annotations"): "training.annotations",
    ("train", "init"): "training.init",
    ("train", "allow_empty"): "training.allow_empty_masks",
    ("train", "level"): "training.intensity_augment",
    ("train", "p_invert"): "training.invert_probability",
    ("train", "synthetic"): None,  # the shipped model's recipe, not the workflow's
    ("train", "synthetic_size"): None,
    ("train", "synthetic_modalities"): None,
    ("train", "synthetic_dir"): None,
    # Several annotation folders at their own pixel sizes, robust normalisation's block and
    # polarity, patches shared by source: the default model's recipe (models/README.md); the
    # workflow trains on one folder, and a model fine-tuned from the default keeps its normalisation.
    ("train", "annotation_pixel_size_um"): None,
    ("train", "normalization_block"): None,
    ("train", "polarity"): None,
    ("train", "sampling"): None,
    ("train", "checkpoint_dir"): None,  # the workflow keeps checkpoints beside the model
    ("train", "progress"): None,  # logs always get progress lines
    ("propose", "channel"): "ingest.channel",
    ("propose", "samples"): None,  # the sample sheet, config key `samples` (a top-level key)
    ("propose", "annotations"): "training.annotations",
    ("propose", "model"): None,  # the model the workflow predicted with, recorded
    ("demo", "n_timepoints"): "demo.timepoints",
    ("demo", "shape"): "demo.size",
    ("demo", "training_set"): None,  # a training set is not the demo experiment
}
SECTIONS = {"ingest": "ingest", "tile": "tiling", "predict": "predict", "stitch": "stitch",
            "segment": "segment", "measure": "measure", "train": "training", "report qc": "report",
            "report position": "report", "demo": "demo", "propose": "propose"}


@pytest.mark.parametrize("verb", sorted(SECTIONS))
def test_every_option_of_a_workflow_verb_is_a_config_key(verb):
    missing = []
    for action in optional_actions(verb_parsers()[verb]):
        key = CONFIG_NAMES.get((verb, action.dest), f"{SECTIONS[verb]}.{action.dest}")
        section, _, name = (key or ".").partition(".")
        if key is not None and name not in CONFIG.get(section, {}):
            missing.append(action.option_strings[0])
    assert missing == []
