"""Pre-flight checks: what the workflow verifies before any job runs.

The Snakefile calls these while it builds the DAG, so a first run on a real folder stops
before any compute job with one line naming the file and the config key, instead of failing
hours later. Planning reads file headers (TIFF/OME tags, the headers of ND2/CZI/LIF
files through bioio) and, of a vendor file, only the last plane of each series (so that a
truncated file stops here), and `plan_experiment` caches what it read by file
size and modification time, so that building the DAG of a large folder stays fast on the
second run; only `check_annotations` reads pixels (the few annotation pairs).

The package is split by concern (``plan``, ``checks``, ``notes``, ``record``); the Snakefile
and the command line use the names below, from here.

- `plan_experiment`: the positions of an experiment folder, one per image file (or per pattern
  group), one per series of a multi-series file, with shape and physical sizes.
- `check_channel`, `check_model`, `check_annotations`, `check_samples`,
  `check_snakemake_path`, `check_output_folder` (``checks``): config keys against the data.
- `unit_warnings`, `folder_warnings`, `scale_warnings` (``notes``): console lines said once
  about what can run but may not be what was meant (no pixel size or frame interval,
  z-slices with one timepoint, masks among the images, positions gone since the last run,
  a resampling that suggests a wrong pixel size).
- `check_experiment_record` / `write_experiment_record`: ``results/<name>/experiment.json``
  remembers the source folder, so a second folder with the same name cannot overwrite it.
"""

from __future__ import annotations

from spheroseg.preflight.checks import (
    check_annotations,
    check_channel,
    check_model,
    check_output_folder,
    check_samples,
    check_snakemake_path,
    schema_error,
)
from spheroseg.preflight.notes import folder_warnings, scale_warnings, unit_warnings
from spheroseg.preflight.plan import (
    CACHE_VERSION,
    PositionPlan,
    folder_name,
    inspect_files,
    plan_experiment,
    position_folders,
    resolve_position,
)
from spheroseg.preflight.record import RECORD_NAME, check_experiment_record, write_experiment_record

__all__ = [
    "CACHE_VERSION", "RECORD_NAME", "PositionPlan", "check_annotations", "check_channel",
    "check_experiment_record", "check_model", "check_output_folder", "check_samples",
    "check_snakemake_path", "folder_name", "folder_warnings", "inspect_files", "plan_experiment",
    "position_folders", "resolve_position", "scale_warnings", "schema_error", "unit_warnings",
    "write_experiment_record",
]
