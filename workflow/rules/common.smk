# Config validation, experiment discovery and input functions. No job logic here.
# Everything that can be checked before a job runs is (spheroseg.preflight): a bad file, a
# bad key or two folders with one name stop the run here, with the file and the key named.
import functools
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import yaml

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

RUN_STARTED = time.time()


def cli_scalar(text, kinds):
    """`text` as the number, boolean or null that the schema `kinds` allow, else unchanged:
    a string that is none of those (a pattern such as "{position}_t{timepoint}.tif") is
    never parsed as YAML."""
    wanted = {
        "number": (int, float),
        "integer": (int,),
        "boolean": (bool,),
        "null": (type(None),),
    }
    allowed = tuple(kind for name in kinds for kind in wanted.get(name, ()))
    if not allowed:
        return text
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(parsed, bool) and "boolean" not in kinds:
        return text
    return parsed if isinstance(parsed, allowed) else text


def enum_kind(choice):
    """The schema type name of one enum choice (strings need no coercion)."""
    if isinstance(choice, bool):
        return "boolean"
    if choice is None:
        return "null"
    return "number" if isinstance(choice, (int, float)) else "string"


def schema_kinds(spec):
    """Schema type names a value of `spec` may have: its type, else its enum choices' types
    (e.g. rescale: [auto, "off", false]), else those of its oneOf alternatives (e.g.
    ingest.channel: a number or names)."""
    kinds = spec.get("type", [])
    if kinds:
        return [kinds] if isinstance(kinds, str) else list(kinds)
    if "enum" in spec:
        return [enum_kind(choice) for choice in spec["enum"]]
    return [kind for form in spec.get("oneOf", []) for kind in schema_kinds(form)]


def coerce_cli_values(values, schema):
    """Turn strings from nested `--config key='{a: 1}'` overrides (parsed by Snakemake as
    strings) into the numbers, booleans or nulls that the schema asks for."""
    for key, value in values.items():
        spec = schema.get("properties", {}).get(
            key, schema.get("additionalProperties") or {}
        )
        kinds = schema_kinds(spec)
        if isinstance(value, dict):
            coerce_cli_values(value, spec)
        elif isinstance(value, list) and isinstance(spec.get("items"), dict):
            items = dict(enumerate(value))
            coerce_cli_values(items, {"additionalProperties": spec["items"]})
            values[key] = [items[index] for index in range(len(value))]
        elif isinstance(value, str):
            values[key] = cli_scalar(value, kinds)


with open(
    Path(workflow.basedir) / "workflow/schemas/config.schema.yaml", encoding="utf-8"
) as handle:
    SCHEMA = yaml.safe_load(handle)
coerce_cli_values(config, SCHEMA)

# Rules call the `spheroseg` command. When snakemake was started as .venv/bin/snakemake
# without activating the environment, put that environment's bin folder on PATH for jobs.
if shutil.which("spheroseg") is None:
    os.environ["PATH"] = (
        f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    )
# The conda environments (envs/*.yaml, `--sdm conda`) install this checkout with pip from
# ${SPHEROSEG_ROOT}: pip expands it when conda, started by this process, creates them.
os.environ.update(SPHEROSEG_ROOT=str(Path(workflow.basedir).resolve()))

from spheroseg import preflight  # noqa: E402  (after PATH: the same environment)
from spheroseg.ingest import PhysicalSizes, check_axes_override  # noqa: E402
from spheroseg.runtime import PARALLEL_MIN_PIXELS  # noqa: E402

# A bad value stops the run with one line naming the key; Snakemake's validate (which also
# fills in defaults) would say the same as a jsonschema dump of 10-20 lines.
CONFIG_PROBLEM = preflight.schema_error(config, SCHEMA)
if CONFIG_PROBLEM is not None:
    raise WorkflowError(CONFIG_PROBLEM)
validate(config, schema="../schemas/config.schema.yaml")

DEMO = config["experiment"] == "demo"
EXPERIMENT_DIR = Path(config["demo"]["folder"] if DEMO else config["experiment"])
# The experiment's name (metrics, plots) and its results folder (braces become parentheses:
# Snakemake would read them as wildcards).
EXPERIMENT = config["experiment_name"] or (
    "demo" if DEMO else EXPERIMENT_DIR.resolve().name
)
OUT = f"{config['results']}/{preflight.folder_name(EXPERIMENT)}"
MODELS_DIR = config["training"]["models_dir"]
MODEL_NAME = config["training"]["model_name"]
# Header summaries of the raw files, so that the next DAG build reads no file again.
PREFLIGHT_CACHE = Path(".snakemake/spheroseg/preflight.json")


wildcard_constraints:
    position=r"[^/]+",


def demo_positions():
    """Plans of the demo positions, from the demo config (their files come from rule demo)."""
    demo = config["demo"]
    shape = (demo["timepoints"], 1, *demo["size"])
    return {
        name: preflight.PositionPlan(
            name,
            (f"{EXPERIMENT_DIR}/{name}.ome.tif",),
            0,
            shape,
            demo["pixel_size_um"],
            demo["time_interval_s"],
        )
        for name in demo["positions"]
    }


def plan_positions():
    """Position folder name -> preflight.PositionPlan (name, files, series, shape, sizes),
    from the demo config or the experiment folder's file headers (cached)."""
    if DEMO:
        return preflight.position_folders(demo_positions())
    if not EXPERIMENT_DIR.is_dir():
        raise ValueError(
            f"experiment must be an existing folder, got {str(EXPERIMENT_DIR)!r} "
            f"(config key 'experiment')"
        )
    plans = preflight.plan_experiment(
        EXPERIMENT_DIR,
        pattern=config["ingest"]["pattern"],
        axes=config["ingest"]["axes"],
        cache=PREFLIGHT_CACHE,
        announce=console_note,
    )
    return preflight.position_folders(plans)


def console_note(line):
    """One ``spheroseg:`` line on the console, from the main Snakemake process only."""
    if workflow.is_main_process:
        print(f"spheroseg: {line}", file=sys.stderr)


def check_config_paths():
    """Config paths become Snakemake file patterns: refuse braces in them; the folders the
    workflow writes into must not be files."""
    paths = {
        "results": config["results"],
        "model": config["model"],
        "training.models_dir": MODELS_DIR,
        "training.annotations": config["training"]["annotations"],
        "training.init": config["training"]["init"],
        "samples": config["samples"],
        "demo.folder": config["demo"]["folder"],
    }
    for key, value in paths.items():
        preflight.check_snakemake_path(value, key)
    for key in ("results", "training.models_dir", "demo.folder"):
        preflight.check_output_folder(paths[key], key)
    for name in config["demo"]["positions"] if DEMO else []:
        preflight.check_snakemake_path(name, "demo.positions")
    if DEMO:
        check_demo()
    if config["ingest"]["axes"] is not None:
        check_axes_override(config["ingest"]["axes"])


def check_demo():
    """The demo's position names and artefact, which its job would refuse or ignore."""
    from spheroseg.synthetic import check_demo_settings, parse_artefact

    demo = config["demo"]
    check_demo_settings(
        demo["positions"],
        n_timepoints=demo["timepoints"],
        artefact=None if demo["artefact"] is None else parse_artefact(demo["artefact"]),
    )


def check_before_any_job():
    """Every check that needs no job: config paths, the data's channels, the model or the
    annotations, and that the results folder is not another experiment's. Returns the
    positions' plans and the channel number ingest.channel chooses in each."""
    check_config_paths()
    positions = plan_positions()
    channels = preflight.check_channel(positions, config["ingest"]["channel"])
    check_samples(positions)
    if not config["training"]["enabled"]:
        # A bioimage.io package is checked by imported_model_path; its model is made by a job.
        model = model_path()
        if model_package() is None:
            preflight.check_model(model, positions=positions)
    else:
        check_training()
    preflight.check_experiment_record(OUT, source=EXPERIMENT_DIR)
    return positions, channels


def check_samples(positions):
    """The sample sheet, if any, against the positions; says once which of its positions the
    experiment does not have."""
    if config["samples"] is None:
        return
    for line in preflight.check_samples(config["samples"], positions):
        console_note(line)


def check_training():
    """The annotations, the validation names and the model training starts from."""
    preflight.check_annotations(
        config["training"]["annotations"],
        val_names=config["training"]["val_names"],
        mask_kind=config["training"]["mask_kind"],
        allow_empty=config["training"]["allow_empty_masks"],
    )
    low, high = config["training"]["percentiles"]
    if not low < high:
        raise ValueError(
            f"training.percentiles must be [low, high] with low < high, got {[low, high]} "
            "(config key 'training.percentiles')"
        )
    init = training_settings()["init"]
    if init is None:
        return
    if config["training"]["init"] is None and model_package() is not None:
        raise ValueError(
            "training.init must name a TorchScript model when model is a bioimage.io package "
            "(recipe finetune starts from model), got null (config key 'training.init')"
        )
    preflight.check_model(
        resolve_shipped(init),
        key="training.init" if config["training"]["init"] else "model",
    )


def position_files(wildcards):
    """Raw input files of one position that Snakemake can track. A path with braces would be
    read as a wildcard pattern: such files are tracked by `untracked_sources` instead.
    """
    return [
        path for path in POSITIONS[wildcards.position].files if not has_braces(path)
    ]


def has_braces(path):
    """Whether Snakemake would read `path` as a pattern."""
    return "{" in path or "}" in path


def untracked_sources(wildcards):
    """Size and mtime of the position's raw files with braces in their path (a params entry:
    a changed file reruns ingest, as a tracked input would)."""
    stamps = [
        f"{os.stat(p).st_size}:{os.stat(p).st_mtime_ns}"
        for p in POSITIONS[wildcards.position].files
        if has_braces(p)
    ]
    return ",".join(stamps)


def channel_of(wildcards):
    """The channel number ingest.channel (a number or channel names) chooses in a position."""
    return CHANNELS[wildcards.position]


def proposal_channels():
    """--channel of propose: one number for every position, else one per position."""
    numbers = [CHANNELS[position] for position in POSITIONS]
    return numbers[0] if len(set(numbers)) == 1 else numbers


def position_name(wildcards):
    """The real name of a position (its folder name has parentheses for braces)."""
    return POSITIONS[wildcards.position].name


def ingest_options():
    """Command-line flags of `spheroseg ingest` for the ingest config section."""
    options = config["ingest"]
    return optional_flags(
        pattern=options["pattern"],
        pixel_size_um=options["pixel_size_um"],
        time_interval_s=options["time_interval_s"],
        z_step_um=options["z_step_um"],
        workers=options["workers"],
        axes=options["axes"],
        fill_nonfinite=options["fill_nonfinite"],
    ) + switches(no_pyramid=not options["pyramid"])


def segment_options(wildcards):
    """segment_flags for one position: without a known pixel size, the area filter is
    segment.min_area_px (min_area_um2 cannot be converted to pixels)."""
    options = dict(config["segment"])
    if known_pixel_size(POSITIONS[wildcards.position]) is None:
        options["min_area_um2"] = None
    return segment_flags(options)


def frame_threads(wildcards):
    """Threads of segment and measure: 2 worker processes for a position large enough for
    them to pay (spheroseg.runtime.PARALLEL_MIN_PIXELS over all frames), else 1."""
    shape = POSITIONS[wildcards.position].shape
    return 2 if shape[0] * shape[-2] * shape[-1] >= PARALLEL_MIN_PIXELS else 1


def known_pixel_size(plan):
    """Pixel size the ingested image will have: ingest.pixel_size_um, else the file's."""
    return config["ingest"]["pixel_size_um"] or plan.pixel_size_um


def annotation_files():
    """Image and mask files of the configured training set, sorted (empty if training is off)."""
    folder = config["training"]["annotations"]
    if not config["training"]["enabled"] or folder is None:
        return []
    suffixes = {".tif", ".tiff", ".png"}
    return sorted(
        str(p)
        for p in Path(folder).rglob("*")
        if p.suffix.lower() in suffixes and p.is_file()
    )


# Training keys that do not change what is trained (where it goes, whether it runs).
_NOT_TRAINING_SETTINGS = {"enabled", "annotations", "model_name", "models_dir"}
# Training keys added after models were first trained: they count (in the model's digest and
# on its command line) only when set away from their default, so that models trained before
# they existed keep their names and are not trained again.
_LATER_TRAINING_SETTINGS = {
    "learning_rate",
    "patience",
    "foreground_fraction",
    "border_weights",
    "invert_probability",
    "depth",
    "base_width",
    "normalization",
    "normalization_scope",
    "percentiles",
    "pixel_size_um",
    "mask_kind",
    "allow_empty_masks",
    "val_fraction",
    "val_names",
    "val_min_pairs",
    "frozen_norm",
    "device",
    "amp",
    "channels_last",
}


def recipe_keys():
    """Config keys that the training recipe sets (spheroseg.training.recipes, the one home of
    their values); a key set away from its default wins over the recipe."""
    from spheroseg.training.recipes import RECIPES

    names = {"level": "intensity_augment"}
    return {names.get(key, key) for key in RECIPES[config["training"]["recipe"]]}


def training_settings():
    """The training settings that name the model (see _LATER_TRAINING_SETTINGS). With a
    recipe, keys left at their default are the recipe's, and recipe finetune without
    training.init starts from `model`, the current model."""
    defaults = SCHEMA["properties"]["training"]["properties"]
    from_recipe = recipe_keys()
    settings = {
        key: value
        for key, value in config["training"].items()
        if key not in _NOT_TRAINING_SETTINGS
        and not (
            key in _LATER_TRAINING_SETTINGS | from_recipe
            and value == defaults[key]["default"]
        )
    }
    if config["training"]["recipe"] == "finetune" and settings["init"] is None:
        settings["init"] = config["model"]
    return settings


@functools.cache
def annotation_digest():
    """Short SHA-256 over the annotation files' names and contents and the training settings:
    names the trained model. A changed setting trains a new model beside the old, protected
    one instead of failing on it. Computed once per Snakemake process: every tile and predict
    job asks for the model path, and rehashing the annotation images for each would cost
    minutes of DAG building on a large experiment."""
    digest = hashlib.sha256()
    for path in annotation_files():
        digest.update(path.encode())
        digest.update(hashlib.sha256(Path(path).read_bytes()).digest())
    digest.update(json.dumps(training_settings(), sort_keys=True).encode())
    return digest.hexdigest()[:12]


def model_path():
    """The model predict uses: the trained one when training is on, else config['model']
    (a bioimage.io package there is imported first, see imported_model_path)."""
    if config["training"]["enabled"]:
        return f"{MODELS_DIR}/{MODEL_NAME}.{annotation_digest()}.pt"
    if model_package():
        return imported_model_path(model_package())
    return resolve_shipped(config["model"])


def model_package():
    """config['model'] if it names a bioimage.io package (.zip, rdf.yaml), else None."""
    from spheroseg.modelzoo.importer import is_package

    model = resolve_shipped(config["model"])
    return model if is_package(model) else None


@functools.cache
def imported_model_path(package):
    """Where rule import_bioimageio writes the package's TorchScript model and card, named by
    the package's SHA-256 (a changed package is imported again). The package is checked
    here, when the DAG is built, so that what spheroseg cannot run fails before any job.
    """
    from spheroseg.modelzoo.importer import check_package

    try:
        check_package(package)
    except (ValueError, RuntimeError) as err:
        raise WorkflowError(f"{err} (config key 'model')") from err
    digest = hashlib.sha256(Path(package).read_bytes()).hexdigest()[:12]
    name = (
        Path(package).stem
        if Path(package).suffix == ".zip"
        else Path(package).resolve().parent.name
    )
    return f"{MODELS_DIR}/bioimageio/{name}.{digest}.pt"


def resolve_shipped(path):
    """A relative path that is missing in the working directory but ships with the
    workflow (e.g. models/default.pt) is taken from beside the Snakefile."""
    shipped = Path(workflow.basedir) / path
    if not Path(path).is_absolute() and not Path(path).exists() and shipped.exists():
        return str(shipped)
    return path


def model_digest(wildcards):
    """SHA-256 recorded in the model card (a params entry: new model content reruns predict)."""
    card = Path(model_path()).with_suffix(".json")
    if not card.is_file():
        return "pending"
    return json.loads(card.read_text(encoding="utf-8")).get("sha256", "unknown")


def optional_flags(**options):
    """Command-line flags for the options that are set: ``--name value`` pairs, quoted by ``:q``."""
    flags = []
    for name, value in options.items():
        if value is not None and value is not False:
            flags += [f"--{name.replace('_', '-')}", str(value)]
    return flags


def switches(**options):
    """Flags without a value for the options that are true: ``no_pyramid=True`` -> ``--no-pyramid``."""
    return [f"--{name.replace('_', '-')}" for name, value in options.items() if value]


def demo_flags(demo):
    """Command-line flags of `spheroseg demo` for the demo config section."""
    flags = [
        flag
        for name, count in demo["positions"].items()
        for flag in ("--position", f"{name}={count}")
    ]
    flags += ["--size", *(str(n) for n in demo["size"])]
    return flags + optional_flags(
        timepoints=demo["timepoints"],
        seed=demo["seed"],
        pixel_size_um=demo["pixel_size_um"],
        time_interval_s=demo["time_interval_s"],
        artefact=demo["artefact"],
    )


def segment_flags(options):
    """Command-line flags of `spheroseg segment` for the segment config section."""
    area = (
        {"min_area_um2": options["min_area_um2"]}
        if options["min_area_um2"] is not None
        else {"min_area_px": options["min_area_px"]}
    )
    flags = optional_flags(
        method=options["method"],
        threshold=options["threshold"],
        **area,
        split_depth=options["split_depth"],
        max_gap=options["max_gap"],
    )
    return flags + switches(
        no_fill_holes=not options["fill_holes"],
        split_touching=options["split_touching"],
        keep_largest=options["keep_largest"],
    )


def train_flags(settings):
    """Command-line flags of `spheroseg train` for the training settings that name the model."""
    values = {
        key: settings.get(key)
        for key in (
            "recipe",
            "epochs",
            "steps_per_epoch",
            "batch_size",
            "patch_size",
            "max_minutes",
            "intensity_augment",
            "seed",
            "learning_rate",
            "patience",
            "foreground_fraction",
            "invert_probability",
            "depth",
            "base_width",
            "normalization",
            "normalization_scope",
            "pixel_size_um",
            "mask_kind",
            "val_fraction",
            "val_min_pairs",
            "device",
        )
    }
    if settings.get("val_names"):
        values["val_fraction"] = None  # the names choose the validation pairs
    init = settings.get("init")
    flags = optional_flags(init=init and resolve_shipped(init), **values)
    flags += (
        ["--percentiles", *map(str, settings["percentiles"])]
        if "percentiles" in settings
        else []
    )
    flags += (
        ["--val-names", *settings["val_names"]] if settings.get("val_names") else []
    )
    return flags + switches(
        border_weights=settings.get("border_weights"),
        allow_empty_masks=settings.get("allow_empty_masks"),
        no_amp=settings.get("amp") is False,
        no_channels_last=settings.get("channels_last") is False,
        frozen_norm=settings.get("frozen_norm"),
    )


def announce_units():
    """Say once, on the console, which positions lack a pixel size or frame interval."""
    overrides = PhysicalSizes(
        config["ingest"]["pixel_size_um"], config["ingest"]["time_interval_s"]
    )
    if workflow.is_main_process:
        lines = preflight.unit_warnings(POSITIONS, overrides=overrides)
        lines += preflight.folder_warnings(
            POSITIONS,
            results=OUT,
            pattern=config["ingest"]["pattern"],
            channel=config["ingest"]["channel"],
        )
        lines += preflight.scale_warnings(
            POSITIONS, model_pixel_size_um=model_pixel_size(), overrides=overrides
        )
        for line in lines:
            console_note(line)


def model_pixel_size():
    """The pixel size predict resamples frames to: the card's, when rescale is auto and the
    model and its card exist before any job (not a model that training or an import makes).
    """
    if config["predict"]["rescale"] != "auto" or config["training"]["enabled"]:
        return None
    if model_package() is not None:
        return None
    card = Path(model_path()).with_suffix(".json")
    return json.loads(card.read_text(encoding="utf-8"))["input"].get("pixel_size_um")


def announce_uncorrected():
    """Say once which proposed masks are still as `snakemake propose` wrote them: training uses
    them as they are (see docs/annotate.md)."""
    folder = config["training"]["annotations"]
    if not (
        config["training"]["enabled"]
        and workflow.is_main_process
        and folder
        and Path(folder).is_dir()
    ):
        return
    from spheroseg.propose import proposal_status

    unchanged = [
        row["frame"] for row in proposal_status(folder) if row["state"] == "as proposed"
    ]
    if unchanged:
        print(
            f"spheroseg: {len(unchanged)} proposed mask(s) in {folder} are unchanged since `snakemake "
            f"propose` wrote them (training uses them as they are): {', '.join(unchanged[:8])}",
            file=sys.stderr,
        )


def final_outputs():
    """Everything `rule all` asks for."""
    per_position = [f"{OUT}/{position}/metrics.csv" for position in POSITIONS]
    return per_position + [f"{OUT}/metrics.csv"]


try:
    POSITIONS, CHANNELS = check_before_any_job()
except ValueError as err:
    raise WorkflowError(str(err)) from None
announce_units()
announce_uncorrected()


onstart:
    preflight.write_experiment_record(
        OUT,
        name=EXPERIMENT,
        source=EXPERIMENT_DIR,
        positions=POSITIONS,
        channels=CHANNELS,
    )


onsuccess:
    from spheroseg.propose import run_summary
    from spheroseg.report.qc import emptied_positions

    # What `snakemake propose` wrote and skipped (its log is not shown on success).
    for line in run_summary(f"{OUT}/proposals.json", since=RUN_STARTED):
        print(f"spheroseg: {line}", file=sys.stderr)
    # Nothing vanishes silently: frames whose every object the size filter removed.
    for line in emptied_positions(f"{OUT}/qc.csv"):
        print(f"spheroseg: {line}", file=sys.stderr)


onerror:
    from spheroseg.joblog import job_errors

    for line in job_errors([OUT, MODELS_DIR], since=RUN_STARTED):
        print(f"spheroseg: job failed: {line}", file=sys.stderr)


def proposal_inputs(wildcards):
    """What propose reads of every position; refuses a missing annotation folder key, or
    one that names a file."""
    folder = config["training"]["annotations"]
    if folder is None:
        raise WorkflowError(
            "training.annotations must name the folder to write proposed frames into, "
            "got null (config key 'training.annotations')"
        )
    try:
        preflight.check_output_folder(folder, "training.annotations")
    except ValueError as err:
        raise WorkflowError(str(err)) from None
    return [
        f"{OUT}/{position}/{name}"
        for position in POSITIONS
        for name in (
            "image.ome.zarr",
            "probabilities.ome.zarr",
            "segment.json",
            "qc.csv",
        )
    ]
