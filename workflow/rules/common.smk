# Config validation, experiment discovery and input functions. No job logic here.
import functools
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import yaml

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate



def coerce_cli_values(values, schema):
    """Turn strings from nested `--config key='{a: 1}'` overrides (parsed by Snakemake as
    strings) into the numbers, booleans or nulls that the schema asks for."""
    for key, value in values.items():
        spec = schema.get("properties", {}).get(key, schema.get("additionalProperties") or {})
        kinds = spec.get("type", [])
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if isinstance(value, dict):
            coerce_cli_values(value, spec)
        elif isinstance(value, list) and isinstance(spec.get("items"), dict):
            items = dict(enumerate(value))
            coerce_cli_values(items, {"additionalProperties": spec["items"]})
            values[key] = [items[index] for index in range(len(value))]
        elif isinstance(value, str) and {"number", "integer", "boolean", "null"} & set(kinds):
            parsed = yaml.safe_load(value)
            if not isinstance(parsed, (str, dict, list)):
                values[key] = parsed


with open(Path(workflow.basedir) / "workflow/schemas/config.schema.yaml", encoding="utf-8") as handle:
    coerce_cli_values(config, yaml.safe_load(handle))
validate(config, schema="../schemas/config.schema.yaml")

# Rules call the `spheroseg` command. When snakemake was started as .venv/bin/snakemake
# without activating the environment, put that environment's bin folder on PATH for jobs.
if shutil.which("spheroseg") is None:
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

DEMO = config["experiment"] == "demo"
EXPERIMENT_DIR = Path(config["demo"]["folder"] if DEMO else config["experiment"])
EXPERIMENT = "demo" if DEMO else EXPERIMENT_DIR.resolve().name
OUT = f"{config['results']}/{EXPERIMENT}"
MODELS_DIR = config["training"]["models_dir"]
MODEL_NAME = config["training"]["model_name"]


wildcard_constraints:
    position=r"[^/]+",


def discover_positions():
    """Position name -> raw files, from the demo config or the experiment folder."""
    if DEMO:
        return {name: [f"{EXPERIMENT_DIR}/{name}.ome.tif"] for name in config["demo"]["positions"]}
    if not EXPERIMENT_DIR.is_dir():
        raise WorkflowError(f"experiment folder not found: {EXPERIMENT_DIR} (config key 'experiment')")
    from spheroseg.ingest import discover_positions as discover

    try:
        found = discover(EXPERIMENT_DIR, pattern=config["ingest"]["pattern"])
    except ValueError as err:
        raise WorkflowError(str(err)) from err
    return {name: [str(path) for path in files] for name, files in found.items()}


POSITIONS = discover_positions()


def position_files(wildcards):
    """Raw input files of one position."""
    return POSITIONS[wildcards.position]


def annotation_files():
    """Image and mask files of the configured training set, sorted (empty if training is off)."""
    folder = config["training"]["annotations"]
    if not config["training"]["enabled"] or folder is None:
        return []
    suffixes = {".tif", ".tiff", ".png"}
    return sorted(str(p) for p in Path(folder).rglob("*") if p.suffix.lower() in suffixes and p.is_file())


# Training keys that do not change what is trained (where it goes, whether it runs).
_NOT_TRAINING_SETTINGS = {"enabled", "annotations", "model_name", "models_dir"}


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
    settings = {k: v for k, v in config["training"].items() if k not in _NOT_TRAINING_SETTINGS}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()[:12]


def model_path():
    """The model predict uses: the trained one when training is on, else config['model']."""
    if config["training"]["enabled"]:
        return f"{MODELS_DIR}/{MODEL_NAME}.{annotation_digest()}.pt"
    return resolve_shipped(config["model"])


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


def demo_flags(demo):
    """Command-line flags of `spheroseg demo` for the demo config section."""
    flags = [flag for name, count in demo["positions"].items() for flag in ("--position", f"{name}={count}")]
    flags += ["--size", *(str(n) for n in demo["size"])]
    return flags + optional_flags(
        timepoints=demo["timepoints"], seed=demo["seed"], pixel_size_um=demo["pixel_size_um"],
        time_interval_s=demo["time_interval_s"], artefact=demo["artefact"],
    )


def segment_flags(options):
    """Command-line flags of `spheroseg segment` for the segment config section."""
    area = ({"min_area_um2": options["min_area_um2"]} if options["min_area_um2"] is not None
            else {"min_area_px": options["min_area_px"]})
    flags = optional_flags(method=options["method"], threshold=options["threshold"], **area)
    flags += [] if options["fill_holes"] else ["--no-fill-holes"]
    flags += ["--split-touching"] if options["split_touching"] else []
    return flags + (["--keep-largest"] if options["keep_largest"] else [])


def final_outputs():
    """Everything `rule all` asks for."""
    per_position = [f"{OUT}/{position}/metrics.csv" for position in POSITIONS]
    return per_position + [f"{OUT}/metrics.csv"]
