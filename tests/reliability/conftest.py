"""Fault injection through the real workflow: kills, full disks, tampered models, odd names.

Every workflow run here builds the metrics of the smallest demo (one position named with
spaces, brackets and a non-ASCII letter, 4 frames of 128 x 128) from a complete config passed with
``--replace-workflow-config`` (Snakemake otherwise merges the ``demo.positions`` mapping
with the defaults). The model is ``models/default.pt``; ``SPHEROSEG_TEST_MODEL`` names
another one (with its card) for development before the default model exists.
"""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import time
import types
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from snakefile_runner import REPO, require_model, run_snakemake, snakemake_command, tool_env
from snakefile_runner import model_file  # noqa: F401 (for the test modules, through `faults`)

POSITION = "well A1 (ctrl) ü"
DEMO = {"positions": {POSITION: 1}, "timepoints": 4, "size": [128, 128]}
# The measurement chain (ingest ... measure, aggregate); the report's plots and GIFs would
# double every run's time and are covered by the soak benchmark.
TARGET = "results/demo/metrics.csv"
RUN_TIMEOUT_S = 600


def deep_update(target: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Update nested mappings in place (like Snakemake's config merge) and return `target`."""
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict) and key != "positions":
            deep_update(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


def write_config(workdir: Path, **changes: Any) -> list[str]:
    """Write a complete config (defaults + demo + `changes`) into `workdir`; return the
    Snakemake arguments that use it instead of the shipped config and ask for TARGET."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text(encoding="utf-8"))
    deep_update(config, {"model": str(require_model()), "demo": DEMO})
    deep_update(config, changes)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "reliability.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return ["--configfile", str(path), "--replace-workflow-config", TARGET]


def run(workdir: Path, config_args: list[str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the workflow with 2 cores and the given config."""
    return run_snakemake(workdir, "--cores", "2", *config_args, *args, check=check)


def resume(workdir: Path, config_args: list[str]) -> subprocess.CompletedProcess[str]:
    """What a user does after a kill: unlock, then rerun with --rerun-incomplete."""
    run_snakemake(workdir, *config_args, "--unlock")
    return run(workdir, config_args, "--rerun-incomplete")


class TriggerMissed(AssertionError):
    """The command ended before the kill trigger appeared (the kill was never sent)."""


@dataclass
class Kill:
    """Where a killed run was stopped."""

    trigger: list[Path]
    seconds: float
    log: str


def run_until_killed(workdir: Path, config_args: list[str], *patterns: str, timeout: float = RUN_TIMEOUT_S) -> Kill:
    """Start the workflow and SIGKILL it with all its jobs as soon as a path matching one of
    the glob `patterns` (relative to `workdir`) exists."""
    command = snakemake_command(workdir, "--cores", "2", *config_args)
    return kill_when_present(command, workdir, patterns, log_path=workdir / "killed-run.log", timeout=timeout)


def kill_when_present(command: list[str], root: Path, patterns: Sequence[str], *, log_path: Path,
                      timeout: float = RUN_TIMEOUT_S) -> Kill:
    """Run `command` in its own process group (cwd `root`) and SIGKILL the whole group as soon
    as a path matching one of the glob `patterns` (relative to `root`) exists.

    Raises
    ------
    TriggerMissed
        If the command ends before any pattern matched (the kill was never sent).
    AssertionError
        If the timeout passes first.
    """
    start = time.monotonic()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=root, stdout=log, stderr=subprocess.STDOUT, env=tool_env(),
                                   start_new_session=True)
        try:
            hits = _wait_for(root, tuple(patterns), process, start + timeout)
        finally:
            _kill_group(process)
    text = log_path.read_text(encoding="utf-8", errors="replace")
    if not hits:
        raise TriggerMissed(f"the run ended before any of {patterns} appeared (kill never sent):\n{text[-4000:]}")
    return Kill(hits, time.monotonic() - start, text)


def _wait_for(workdir: Path, patterns: tuple[str, ...], process: subprocess.Popen, deadline: float) -> list[Path]:
    """Poll every 2 ms for the patterns; [] if the process ends first."""
    while process.poll() is None:
        hits = _glob(workdir, patterns)
        if hits:
            return hits
        if time.monotonic() > deadline:
            raise AssertionError(f"none of {patterns} appeared within the timeout")
        time.sleep(0.002)
    return []


def _glob(workdir: Path, patterns: tuple[str, ...]) -> list[Path]:
    """The paths matching `patterns` now; [] when a folder vanishes while being listed (the
    running job renamed or removed its temporary output between two steps of the glob)."""
    try:
        return [path for pattern in patterns for path in workdir.glob(pattern)]
    except FileNotFoundError:
        return []


def _kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the process group of `process` (Snakemake and every job it started)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=60)


def csv_files(workdir: Path) -> dict[str, bytes]:
    """Every CSV under results/, by path relative to the workdir, with its bytes."""
    return {path.relative_to(workdir).as_posix(): path.read_bytes()
            for path in sorted((workdir / "results").rglob("*.csv"))}


def assert_same_csvs(actual: Path, expected: Path) -> None:
    """The CSVs of two runs are byte-identical (and there are some)."""
    got, want = csv_files(actual), csv_files(expected)
    assert want, f"the reference run wrote no CSV under {expected}"
    assert sorted(got) == sorted(want), "the runs wrote different CSV files"
    differing = [name for name in want if got[name] != want[name]]
    assert not differing, f"CSVs differ from the uninterrupted run: {differing}"


def leftovers(workdir: Path) -> list[str]:
    """Temporary outputs of spheroseg.atomic left under results/ (``.NAME.tmp-XXXX``)."""
    return sorted(path.relative_to(workdir).as_posix()
                  for path in (workdir / "results").rglob(".*.tmp-*"))


@pytest.fixture(scope="session")
def faults() -> Any:
    """These helpers, for the test modules (a fixture works under every pytest import mode,
    and with several conftest.py modules in one session)."""
    return types.SimpleNamespace(**{name: value for name, value in globals().items() if not name.startswith("__")})


@pytest.fixture(scope="session")
def baseline(tmp_path_factory) -> Path:
    """One uninterrupted run of the small demo: the reference every other run must match."""
    workdir = tmp_path_factory.mktemp("baseline")
    run(workdir, write_config(workdir))
    return workdir
