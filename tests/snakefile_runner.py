"""Run the repository's Snakefile from the tests: the one helper every workflow test uses.

Importable from any test module or conftest because the pytest block of pyproject.toml puts
``tests/`` on ``sys.path`` (``pythonpath``). The root ``tests/conftest.py`` tells this module
which test is running (:func:`running`), so that building a Snakemake command in a test
that is not marked ``@pytest.mark.workflow`` fails: ``pytest -m "not workflow"`` (the fast
loop) then never runs the Snakefile by accident.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
BIN = Path(sys.executable).parent
SPHEROSEG = str(BIN / "spheroseg")  # the command line tool of this environment
_running: list[pytest.Item] = []  # the test being set up, run or torn down (at most one)


@contextmanager
def running(item: pytest.Item) -> Iterator[None]:
    """Record `item` as the running test (its setup, call and teardown) for the marker check."""
    _running.append(item)
    try:
        yield
    finally:
        _running.remove(item)


def tool_env() -> dict[str, str]:
    """``os.environ`` with this Python's bin folder first on PATH, so that Snakemake and its
    jobs run this environment's ``snakemake`` and ``spheroseg``."""
    return dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")


def require_spheroseg() -> None:
    """Skip the test unless the ``spheroseg`` command is installed next to this Python."""
    if shutil.which("spheroseg", path=str(BIN)) is None:
        pytest.skip("the spheroseg command is not installed next to this Python")


def model_file() -> Path | None:
    """The model the workflow tests run (``models/default.pt``, or the TorchScript file that
    ``SPHEROSEG_TEST_MODEL`` names), or None if it or its card does not exist."""
    chosen = Path(os.environ.get("SPHEROSEG_TEST_MODEL", REPO / "models" / "default.pt")).resolve()
    return chosen if chosen.is_file() and chosen.with_suffix(".json").is_file() else None


def require_model() -> Path:
    """Skip the test unless the spheroseg command and the test model exist; return the model."""
    require_spheroseg()
    model = model_file()
    if model is None:
        pytest.skip("models/default.pt (with its card) does not exist; set SPHEROSEG_TEST_MODEL")
    return model


def snakemake_command(workdir: Path, *args: str | os.PathLike[str], snakefile: Path = SNAKEFILE) -> list[str]:
    """The command line that runs `snakefile` in `workdir` with this Python's Snakemake.

    Raises
    ------
    pytest.fail.Exception
        If the running test is not marked ``workflow``.
    """
    for item in _running:
        if item.get_closest_marker("workflow") is None:
            pytest.fail(f"{item.nodeid} runs the Snakefile but is not marked @pytest.mark.workflow "
                        "(the fast loop pytest -m 'not workflow' would run it)", pytrace=False)
    return [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(workdir),
            *map(str, args)]


def run_snakemake(workdir: Path, *args: str | os.PathLike[str], check: bool = True, snakefile: Path = SNAKEFILE,
                  timeout: float = 1200, umask: int | None = None) -> subprocess.CompletedProcess[str]:
    """Run `snakefile` (the repository's by default) in `workdir`, from `workdir`, with the
    file-creation mask `umask` if given.

    Raises
    ------
    AssertionError
        If `check` and Snakemake fails; the message holds the end of its output.
    """
    command = snakemake_command(workdir, *args, snakefile=snakefile)
    Path(workdir).mkdir(parents=True, exist_ok=True)
    preexec = None if umask is None else (lambda: os.umask(umask))
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, env=tool_env(), timeout=timeout,
                            preexec_fn=preexec)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(map(str, args))} failed (exit {result.returncode}):\n"
                             f"{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result
