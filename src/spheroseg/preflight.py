"""Pre-flight checks: what the workflow verifies before any job runs.

The Snakefile calls these while it builds the DAG, so a first run on a real folder stops
before any compute job with one line naming the file and the config key, instead of failing
hours later. Everything here reads file headers only (TIFF/OME tags, the headers of
ND2/CZI/LIF files through bioio; never pixel data), and
`plan_experiment` caches what it read by file size and modification time, so that building
the DAG of a large folder stays fast on the second run.

- `plan_experiment`: the positions of an experiment folder, one per image file (or per pattern
  group), one per series of a multi-series file, with shape and physical sizes.
- `check_channel`, `check_model`, `check_annotations`, `check_samples`,
  `check_snakemake_path`: config keys against the data.
- `unit_warnings`: which positions lack a pixel size or a frame interval, said once.
- `check_experiment_record` / `write_experiment_record`: ``results/<name>/experiment.json``
  remembers the source folder, so a second folder with the same name cannot overwrite it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spheroseg.ingest import (
    IngestError,
    MissingReaderError,
    PhysicalSizes,
    TiffLayout,
    discover_positions,
    inspect_series,
)
from spheroseg.ingest.sources import check_timepoint_files

# 2: LIF frame intervals come from the file's T dimension (version 1 summaries have none).
# 3: summaries record the dtype (per-timepoint files are checked against each other).
CACHE_VERSION = 3
RECORD_NAME = "experiment.json"
# Characters that cannot appear in a series' part of a position (folder) name.
_UNSAFE_NAME = re.compile(r"[/\\\x00-\x1f]+")


@dataclass(frozen=True)
class PositionPlan:
    """One position as the workflow will ingest it.

    Attributes
    ----------
    name : str
        Position name, as in the metrics CSVs and plots.
    files : tuple of str
        Its raw file(s): one stack, or one file per timepoint.
    series : int
        Series (OME image) of each file that holds the position.
    shape : tuple of int
        ``(T, C, [Z,] Y, X)`` after ingest.
    pixel_size_um, time_interval_s : float or None
        From the file metadata; None if the file does not say.
    """

    name: str
    files: tuple[str, ...]
    series: int
    shape: tuple[int, ...]
    pixel_size_um: float | None
    time_interval_s: float | None

    @property
    def frames(self) -> int:
        """Number of timepoints."""
        return self.shape[0]

    @property
    def channels(self) -> int:
        """Number of channels."""
        return self.shape[1]


def folder_name(name: str) -> str:
    """Folder (and Snakemake wildcard) name for an experiment or position name.

    Snakemake reads ``{...}`` in any path as a wildcard and has no escape for it, so braces
    become parentheses in folder names; the metrics and plots keep the real name.

    Examples
    --------
    >>> folder_name("run {1}")
    'run (1)'
    """
    return name.replace("{", "(").replace("}", ")")


def _layout_record(layout: TiffLayout) -> dict[str, Any]:
    """JSON-ready summary of a layout (for the cache)."""
    return {"series": layout.series, "series_name": layout.series_name,
            "shape": list(layout.shape), "dtype": str(layout.dtype),
            "pixel_size_um": layout.sizes.pixel_size_um,
            "time_interval_s": layout.sizes.time_interval_s}


def _load_cache(path: Path | None) -> dict[str, Any]:
    """The cached file summaries, or an empty cache if absent, unreadable or outdated."""
    if path is None or not path.is_file():
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(document, dict) or document.get("version") != CACHE_VERSION:
        return {}
    files = document.get("files")
    return files if isinstance(files, dict) else {}


def _save_cache(path: Path | None, entries: dict[str, Any]) -> None:
    """Write the cache atomically, keeping entries whose file still exists; never raises."""
    from spheroseg.atomic import write_text

    if path is None:
        return
    kept = {name: entry for name, entry in entries.items() if os.path.exists(name)}
    try:
        write_text(path, json.dumps({"version": CACHE_VERSION, "files": kept}))
    except OSError:
        pass  # a cache that cannot be written only costs time


def inspect_files(paths: Sequence[str | os.PathLike[str]], *, axes: str | None = None,
                  cache: str | os.PathLike[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Series summaries of image files (TIFF, ND2, CZI, LIF) from their headers, cached by
    size and mtime.

    Parameters
    ----------
    paths : sequence of str or PathLike
        The files.
    axes : str, optional
        ``ingest.axes`` (part of the cache key).
    cache : str or PathLike, optional
        JSON file that remembers earlier answers.

    Returns
    -------
    dict of str to list of dict
        Absolute path -> one summary per series (``series``, ``series_name``, ``shape``,
        ``pixel_size_um``, ``time_interval_s``).

    Raises
    ------
    IngestError
        The first unreadable, truncated or ambiguous file (cached too, until it changes).
    """
    cache_path = None if cache is None else Path(cache)
    entries = _load_cache(cache_path)
    answers, changed = {}, False
    for path in paths:
        key = os.path.abspath(path)
        try:
            stat = os.stat(key)
        except OSError as err:
            what = ("a link to a missing file" if os.path.islink(key) else "a file that vanished") \
                if isinstance(err, FileNotFoundError) else f"one that cannot be read ({err.strerror})"
            raise IngestError(f"file must be readable, got {what} (in {key})") from err
        stamp = [stat.st_size, stat.st_mtime_ns, axes]
        entry = entries.get(key)
        if not isinstance(entry, dict) or entry.get("stamp") != stamp:
            entry, changed = _inspect_entry(key, axes, stamp), True
            entries[key] = entry
        answers[key] = entry
    if changed:
        _save_cache(cache_path, entries)
    for key, entry in answers.items():
        if "error" in entry:
            raise IngestError(entry["error"])
    return {key: entry["series"] for key, entry in answers.items()}


def _inspect_entry(path: str, axes: str | None, stamp: list[Any]) -> dict[str, Any]:
    """Cache entry of one file: its series summaries, or the error reading it."""
    try:
        layouts = inspect_series(path, axes=axes)
    except MissingReaderError:
        raise  # not cached: installing the readers fixes it
    except IngestError as err:
        return {"stamp": stamp, "error": str(err)}
    return {"stamp": stamp, "series": [_layout_record(layout) for layout in layouts]}


def _series_labels(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Name part of each series: its metadata name if all are distinct, else s0, s1, ..."""
    names = [_UNSAFE_NAME.sub("_", str(record["series_name"])).strip() for record in records]
    if all(names) and len(set(names)) == len(names):
        return names
    return [f"s{record['series']}" for record in records]


def _plans_of(name: str, files: Sequence[str], records: Sequence[Mapping[str, Any]]
              ) -> list[PositionPlan]:
    """One plan per series of a position's (first) file; T counts all files."""
    labels = _series_labels(records) if len(records) > 1 else [None]
    plans = []
    for label, record in zip(labels, records):
        shape = tuple(record["shape"])
        if len(files) > 1:
            shape = (len(files), *shape[1:])
        plans.append(PositionPlan(
            name=name if label is None else f"{name}_{label}", files=tuple(files),
            series=int(record["series"]), shape=shape, pixel_size_um=record["pixel_size_um"],
            time_interval_s=record["time_interval_s"]))
    return plans


def plan_experiment(folder: str | os.PathLike[str], *, pattern: str | None = None,
                    axes: str | None = None, cache: str | os.PathLike[str] | None = None
                    ) -> dict[str, PositionPlan]:
    """The positions of an experiment folder, read from file headers (no pixel data).

    Each image file (or each pattern group) is a position; a file with several series (an
    OME-TIFF of several stage positions from ``bfconvert``, the scenes of a multi-position
    ND2, CZI or LIF file) gives one position per series,
    named ``<file position>_<series name>`` (``_s<index>`` when names are missing or
    repeated). With a pattern, every file of a position is inspected and must match the first.

    Parameters
    ----------
    folder : str or PathLike
        The experiment folder.
    pattern : str, optional
        ``ingest.pattern`` (see `spheroseg.ingest.discover_positions`).
    axes : str, optional
        ``ingest.axes``: NGFF letters per file axis, for files whose layout is ambiguous.
    cache : str or PathLike, optional
        JSON cache of header summaries (see `inspect_files`).

    Returns
    -------
    dict of str to PositionPlan
        Position name -> plan, sorted by name.

    Raises
    ------
    ValueError
        If discovery fails, a file is unreadable or ambiguous (`IngestError`, naming the file
        and ``ingest.axes``), or two positions get the same name.
    """
    found = {name: [str(path) for path in paths]
             for name, paths in discover_positions(folder, pattern=pattern).items()}
    summaries = inspect_files([path for paths in found.values() for path in paths], axes=axes, cache=cache)
    plans: dict[str, PositionPlan] = {}
    for name, paths in found.items():
        if len(paths) > 1:  # one file per timepoint: each must match the first
            check_timepoint_files([(path, summaries[os.path.abspath(path)][0]["shape"],
                                    summaries[os.path.abspath(path)][0]["dtype"]) for path in paths])
        for plan in _plans_of(name, paths, summaries[os.path.abspath(paths[0])]):
            if plan.name in plans:
                raise ValueError(
                    f"position names must be unique, got {plan.name!r} from both "
                    f"{Path(plans[plan.name].files[0]).name!r} and {Path(paths[0]).name!r} "
                    f"(in {folder})")
            plans[plan.name] = plan
    return dict(sorted(plans.items()))


def resolve_position(folder: str | os.PathLike[str], name: str, *, pattern: str | None = None,
                     axes: str | None = None) -> PositionPlan:
    """The plan of one position, reading only the files that can hold it.

    Raises
    ------
    ValueError
        If no position has that name (the message lists some that do), or the name is a
        multi-series file (the message lists its series positions).
    """
    found = discover_positions(folder, pattern=pattern)
    candidates = [base for base in found if name == base or name.startswith(base + "_")]
    for base in sorted(candidates, key=len, reverse=True):
        paths = [str(path) for path in found[base]]
        records = inspect_files(paths[:1], axes=axes)[os.path.abspath(paths[0])]
        plans = {plan.name: plan for plan in _plans_of(base, paths, records)}
        if name in plans:
            return plans[name]
        if name == base:
            raise ValueError(
                f"position must name one series of the multi-series file {Path(paths[0]).name!r}, "
                f"got {name!r}; use one of {sorted(plans)!r} (in {folder})")
    known = ", ".join(repr(base) for base in list(found)[:10])
    raise ValueError(f"position must be one of {known}{' ...' if len(found) > 10 else ''}, "
                     f"got {name!r} (in {folder})")


def position_folders(plans: Mapping[str, PositionPlan]) -> dict[str, PositionPlan]:
    """Folder name (`folder_name`) -> plan; raise if two positions share a folder."""
    folders: dict[str, PositionPlan] = {}
    for plan in plans.values():
        folder = folder_name(plan.name)
        if folder in folders:
            raise ValueError(
                f"position names must differ in more than braces versus parentheses, got "
                f"{folders[folder].name!r} and {plan.name!r}; rename one file "
                f"(in {Path(plan.files[0]).parent})")
        folders[folder] = plan
    return folders


def check_channel(plans: Mapping[str, PositionPlan], channel: int) -> None:
    """Raise if ``ingest.channel`` is beyond the channels of any position.

    Examples
    --------
    >>> plan = PositionPlan("A", ("A.tif",), 0, (2, 1, 8, 8), None, None)
    >>> check_channel({"A": plan}, 1)
    Traceback (most recent call last):
    ...
    ValueError: ingest.channel must be below 1 (the channels of position 'A'), got 1 (in A.tif)
    """
    for plan in plans.values():
        if not 0 <= channel < plan.channels:
            raise ValueError(
                f"ingest.channel must be below {plan.channels} (the channels of position "
                f"{plan.name!r}), got {channel} (in {plan.files[0]})")


def check_model(path: str | os.PathLike[str], *, key: str = "model",
                positions: Mapping[str, PositionPlan] | None = None) -> None:
    """Raise unless `path` is a TorchScript model file whose JSON card beside it is valid and
    matches it (SHA-256), and, given `positions`, whose input channels every position has.

    Reads the card and hashes the model file; torch is not imported (a loadable archive is
    recognised by its ``code/`` and ``constants.pkl`` entries).
    """
    from spheroseg.modelcard import read_verified_card

    model = Path(path)
    card_path = model.with_suffix(".json")
    if not model.is_file():
        raise ValueError(f"{key} must be an existing TorchScript model file (with its JSON "
                         f"card beside it), got {str(path)!r} (config key '{key}')")
    if not card_path.is_file():
        raise ValueError(f"{key} must have its JSON model card beside it, got no "
                         f"{card_path.name!r} (config key '{key}', in {model.parent})")
    try:
        card = read_verified_card(model)
    except ValueError as err:
        raise ValueError(f"{err} (config key '{key}')") from err
    if not _is_torchscript_archive(model):
        raise ValueError(f"{key} must be a TorchScript file (torch.jit.save), got a file that is "
                         f"not one (config key '{key}', in {model})")
    wanted = card["input"]["channels"]
    for plan in (positions or {}).values():
        if wanted not in (1, plan.channels):
            raise ValueError(
                f"input.channels must be 1 or the {plan.channels} channel(s) of position "
                f"{plan.name!r}, got {wanted} (the model does not fit the data; config key "
                f"'{key}', in {card_path})")


def _is_torchscript_archive(path: Path) -> bool:
    """Whether `path` is a zip archive laid out as ``torch.jit.save`` writes it."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    return (any("/code/" in name for name in names)
            and any(name.endswith("/constants.pkl") for name in names))


def check_annotations(folder: str | None, *, val_names: Sequence[str] = (), mask_kind: str = "auto",
                      allow_empty: bool = False) -> None:
    """Raise unless `folder` holds image/mask pairs (``training.annotations``) that training
    can read (sizes agree, masks binarise and, unless `allow_empty`, hold foreground) and
    every name of `val_names` (``training.val_names``) is one of them, with one left for
    training. Reads every pair: annotation sets are a few frames."""
    from spheroseg.training.data import find_annotation_pairs, load_pair, split_pairs

    if folder is None:
        raise ValueError("training.annotations must name a folder of image/mask pairs when "
                         "training.enabled is true, got null (config key "
                         "'training.annotations')")
    try:
        pairs = find_annotation_pairs(folder)
        for pair in pairs:
            load_pair(pair, mask_kind=mask_kind, allow_empty=allow_empty)
    except ValueError as err:
        raise ValueError(f"training.annotations: {err} (config key 'training.annotations')") from err
    if val_names:
        try:
            split_pairs(pairs, val_names=list(val_names))
        except ValueError as err:
            raise ValueError(f"training.val_names: {err} (in {folder})") from err


def check_samples(path: str | os.PathLike[str], plans: Mapping[str, PositionPlan]
                  ) -> list[str]:
    """Raise unless the sample sheet (``samples``) is readable and lists every position;
    return console lines about its positions that the experiment does not have.

    Parameters
    ----------
    path : str or PathLike
        The sample sheet (`spheroseg.report.samples.read_samples`).
    plans : mapping of str to PositionPlan
        The experiment's positions (their names are those of the metrics).

    Returns
    -------
    list of str
        One line naming the sheet's unknown positions (ignored by the report: a sheet may
        describe a whole plate), or none.

    Raises
    ------
    ValueError
        If `read_samples` refuses the sheet, or a position of the experiment is not in it.
    """
    from spheroseg.report.samples import read_samples

    listed = read_samples(path)["position"].tolist()
    names = [plan.name for plan in plans.values()]
    missing = [name for name in names if name not in listed]
    if missing:
        raise ValueError(f"every position of the experiment must be in the sample sheet, got "
                         f"{len(missing)} of {len(names)} missing: {_names(missing)} "
                         f"(config key 'samples', in {path})")
    unknown = [name for name in listed if name not in names]
    if not unknown:
        return []
    return [f"the sample sheet lists {len(unknown)} position(s) that the experiment does not "
            f"have, ignored: {_names(unknown)} (config key 'samples', in {path})"]


def check_snakemake_path(value: str | None, key: str) -> None:
    """Raise if a configured path has braces, which Snakemake would read as wildcards."""
    if value is not None and ("{" in value or "}" in value):
        raise ValueError(f"{key} must not contain '{{' or '}}' (Snakemake reads them as "
                         f"wildcards), got {value!r} (config key '{key}')")


def check_output_folder(value: str | None, key: str) -> None:
    """Raise if a configured output folder, or a folder above it, is a file.

    Examples
    --------
    >>> check_output_folder("results/new", "results")
    """
    if value is None:
        return
    for folder in (Path(value), *Path(value).parents):
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"{key} must be a folder (or not exist yet), got {value!r}, where "
                             f"{str(folder)!r} is a file (config key '{key}')")


def unit_warnings(plans: Mapping[str, PositionPlan], *,
                  overrides: PhysicalSizes = PhysicalSizes()) -> list[str]:
    """Console lines about positions without pixel size or frame interval (empty if none)."""
    lines = []
    if overrides.pixel_size_um is None:
        missing = [plan.name for plan in plans.values() if plan.pixel_size_um is None]
        if missing:
            lines.append(
                f"{len(missing)} of {len(plans)} position(s) have no pixel size in their "
                f"metadata: {_names(missing)}. Their objects are filtered by "
                f"segment.min_area_px instead of segment.min_area_um2 and measured in pixels, "
                f"and the model sees them at their own scale (predict.rescale needs a pixel "
                f"size); set ingest.pixel_size_um (micrometres) to measure in micrometres.")
    if overrides.time_interval_s is None:
        series = [plan for plan in plans.values() if plan.frames > 1]
        missing = [plan.name for plan in series if plan.time_interval_s is None]
        if missing:
            lines.append(
                f"{len(missing)} of {len(series)} time series have no frame interval in their "
                f"metadata: {_names(missing)}. Their time is in frames (column time_frame); "
                f"set ingest.time_interval_s (seconds) for time in seconds.")
    return lines


def folder_warnings(plans: Mapping[str, PositionPlan], *,
                    results: str | os.PathLike[str]) -> list[str]:
    """Console lines about a folder that runs but may not be what was meant (empty if none):
    positions whose frames are z-slices (max-projected into one frame), positions named like
    annotation masks, and positions of an earlier run (``results/experiment.json``) whose
    files are gone."""
    lines = []
    slices = [plan.name for plan in plans.values()
              if len(plan.shape) == 5 and plan.shape[2] > 1 and plan.frames == 1]
    if slices:
        lines.append(
            f"{len(slices)} position(s) have z-slices and one timepoint: {_names(slices)}. Each "
            f"is max-projected into one frame; if the slices are timepoints (ImageJ saves a "
            f"plain stack as slices), set ingest.axes, e.g. 'tyx'.")
    masks = [plan.name for plan in plans.values() if plan.name.lower().endswith("_mask")]
    if masks:
        lines.append(
            f"{len(masks)} position(s) are named like annotation masks: {_names(masks)}. They "
            f"are segmented and measured as images; annotation pairs belong in "
            f"training.annotations, not in the experiment folder.")
    gone = sorted(set(_recorded_positions(results)) - {plan.name for plan in plans.values()})
    if gone:
        lines.append(
            f"{len(gone)} position(s) of an earlier run are no longer in the experiment folder: "
            f"{_names(gone)}. Their results stay in {results} but are left out of the "
            f"experiment's tables and report.")
    return lines


def _recorded_positions(results: str | os.PathLike[str]) -> list[str]:
    """Position names that ``results/experiment.json`` lists (none if it is absent or unreadable)."""
    try:
        document = json.loads((Path(results) / RECORD_NAME).read_text(encoding="utf-8"))
        return [str(name) for name in document["positions"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def scale_warnings(plans: Mapping[str, PositionPlan], *, model_pixel_size_um: float | None,
                   overrides: PhysicalSizes = PhysicalSizes(), smallest_side: int = 64,
                   largest_factor: float = 8.0) -> list[str]:
    """Console lines about positions that predict would resample to the model's pixel size
    by more than `largest_factor` either way, or to frames with a side below `smallest_side`
    pixels: most often a wrong ``ingest.pixel_size_um`` (empty if none)."""
    from spheroseg.inference.rescale import RESCALE_TOLERANCE

    if model_pixel_size_um is None:
        return []
    odd = []
    for plan in plans.values():
        pixel = overrides.pixel_size_um or plan.pixel_size_um
        if pixel is None:
            continue
        factor = pixel / model_pixel_size_um
        sides = [round(side * factor) for side in plan.shape[-2:]]
        if abs(factor - 1) <= RESCALE_TOLERANCE:  # predicted as it is
            continue
        if min(sides) < smallest_side or not 1 / largest_factor <= factor <= largest_factor:
            odd.append(f"{plan.name!r} ({plan.shape[-2]} x {plan.shape[-1]} px at {pixel:g} um/px "
                       f"-> {sides[0]} x {sides[1]} px)")
    if not odd:
        return []
    return [f"{len(odd)} position(s) would be resampled to the model's {model_pixel_size_um:g} um/px by "
            f"a large factor: {', '.join(odd[:4])}{' and more' if len(odd) > 4 else ''}. Check "
            f"ingest.pixel_size_um (or the files' pixel size); predict.rescale: off predicts at the "
            f"image's own scale."]


def _names(names: Sequence[str], *, shown: int = 8) -> str:
    """Up to `shown` names, quoted, then how many more."""
    text = ", ".join(repr(name) for name in names[:shown])
    return text + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _source_paths(source: str | os.PathLike[str]) -> tuple[str, str | None]:
    """Absolute path of `source`, and its path relative to the working directory if inside it
    (a project folder copied with its data and results keeps that one)."""
    absolute = os.path.abspath(source)
    relative = os.path.relpath(absolute)
    inside = relative != ".." and not relative.startswith(".." + os.sep)
    return absolute, relative if inside else None


def check_experiment_record(results: str | os.PathLike[str], *, source: str | os.PathLike[str]
                            ) -> None:
    """Raise if ``results/experiment.json`` says the results came from another folder.

    Raises
    ------
    ValueError
        Naming both folders and the ``experiment_name`` key that keeps them apart.
    """
    record = Path(results) / RECORD_NAME
    if not record.is_file():
        return
    try:
        document = json.loads(record.read_text(encoding="utf-8"))
        earlier, earlier_relative = document["source"], document.get("source_in_workdir")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{RECORD_NAME} must be a JSON object with a 'source', got an "
                         f"unreadable file (in {results})") from err
    current, relative = _source_paths(source)
    if earlier != current and (relative is None or earlier_relative != relative):
        suggestion = "_".join(Path(current).parts[-2:]) or "name"
        raise ValueError(
            f"experiment folder must be the one these results came from ({earlier}), got "
            f"{current}; set experiment_name to keep both (e.g. --config "
            f"experiment_name={suggestion!r}), or if the folder moved, correct 'source' "
            f"(in {record})")


def write_experiment_record(results: str | os.PathLike[str], *, name: str,
                            source: str | os.PathLike[str],
                            positions: Mapping[str, PositionPlan]) -> Path:
    """Write ``results/experiment.json``: experiment name, source folder and positions."""
    from spheroseg import __version__
    from spheroseg.atomic import write_text

    record = Path(results) / RECORD_NAME
    absolute, relative = _source_paths(source)
    document = {
        "experiment": name, "source": absolute, "source_in_workdir": relative,
        "spheroseg": __version__,
        "positions": {plan.name: {"folder": folder,
                                  "files": [os.path.abspath(path) for path in plan.files],
                                  "series": plan.series}
                      for folder, plan in positions.items()},
    }
    write_text(record, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return record
