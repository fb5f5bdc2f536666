"""``results/<name>/experiment.json``: the source folder and positions of the results, so a
second folder with the same name cannot overwrite them."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from spheroseg.preflight.plan import PositionPlan

RECORD_NAME = "experiment.json"


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
                            positions: Mapping[str, PositionPlan],
                            channels: Mapping[str, int] | None = None) -> Path:
    """Write ``results/experiment.json``: experiment name, source folder and positions (their
    files, series, where the files name them, channel names, and, given `channels` (position
    folder -> number), the channel segmented)."""
    from spheroseg import __version__
    from spheroseg.atomic import write_text

    record = Path(results) / RECORD_NAME
    absolute, relative = _source_paths(source)
    document = {
        "experiment": name, "source": absolute, "source_in_workdir": relative,
        "spheroseg": __version__,
        "positions": {plan.name: {"folder": folder,
                                  "files": [os.path.abspath(path) for path in plan.files],
                                  "series": plan.series,
                                  **({"channel_names": list(plan.channel_names)} if plan.channel_names else {}),
                                  **({"channel": channels[folder]} if channels is not None else {})}
                      for folder, plan in positions.items()},
    }
    write_text(record, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return record
