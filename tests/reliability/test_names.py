"""Position, file and folder names with spaces, brackets, quotes and non-ASCII letters."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from snakefile_runner import SPHEROSEG

REPO = Path(__file__).resolve().parents[2]
ODD_NAMES = {
    "shell-and-glob": "b[1] {x} $HOME 'q' \"d\" ;&",
    "non-latin": "日本語 Ω",
}


@pytest.mark.workflow
def test_position_with_spaces_brackets_and_umlaut_runs_end_to_end(baseline, faults):
    from spheroseg import ngff

    folder = baseline / "results" / "demo" / faults.POSITION
    per_position = pd.read_csv(folder / "metrics.csv")
    experiment = pd.read_csv(baseline / "results" / "demo" / "metrics.csv")
    assert len(per_position) > 0, "the demo body must be measured"
    assert set(per_position["position"]) == {faults.POSITION}
    assert set(experiment["position"]) == {faults.POSITION}
    assert sorted(p.name for p in (folder / "metrics").glob("t*.csv")) == [f"t{t:04d}.csv" for t in range(4)]
    assert ngff.read_metadata(folder / "image.ome.zarr").name == faults.POSITION


@pytest.fixture(scope="module")
def odd_experiment(tmp_path_factory) -> Path:
    """An experiment folder with an odd name holding one demo TIFF per odd position name."""
    folder = tmp_path_factory.mktemp("odd") / "exp [1] {a} $PWD 'ü'"
    positions = [arg for name in ODD_NAMES.values() for arg in ("--position", f"{name}=1")]
    subprocess.run([SPHEROSEG, "demo", "--output", str(folder), *positions, "--size", "64", "64",
                    "--timepoints", "2"], check=True, capture_output=True, timeout=300)
    return folder


@pytest.mark.parametrize("name", list(ODD_NAMES.values()), ids=list(ODD_NAMES))
def test_ingest_accepts_odd_folder_and_position_names(odd_experiment, name):
    from spheroseg import ngff

    output = odd_experiment.parent / "results" / name / "image.ome.zarr"
    result = subprocess.run([SPHEROSEG, "ingest", "--experiment", str(odd_experiment), "--position", name,
                             "--output", str(output)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    metadata = ngff.read_metadata(output)
    assert metadata.name == name and metadata.shape[0] == 2


def _shell_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of the ``shell:`` blocks of a rules file."""
    lines, indent = [], None
    for number, line in enumerate(text.splitlines(), start=1):
        depth = len(line) - len(line.lstrip())
        if indent is not None and line.strip() and depth <= indent:
            indent = None
        if indent is not None:
            lines.append((number, line))
        if line.strip() == "shell:":
            indent = depth
    return lines


def test_every_path_or_name_in_a_rule_shell_command_is_quoted():
    # Unquoted {input}, {output}, {log} or {wildcards.x} break on spaces, quotes and $.
    unquoted, commands = [], 0
    for rules in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for number, line in _shell_lines(rules.read_text(encoding="utf-8")):
            commands += 1
            for field, quoted in re.findall(r"(?<!\{)\{((?:input|output|log|wildcards)[^{}:]*)(:q)?\}", line):
                if not quoted:
                    unquoted.append(f"{rules.name}:{number}: {{{field}}}")
    assert commands > 0, "no shell command found in workflow/rules"
    assert unquoted == []
