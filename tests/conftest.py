"""Suite-wide hooks and fixtures: the workflow-marker check and the shared demo run.

Helpers that run the Snakefile live in ``tests/snakefile_runner.py`` (importable: the pytest
block of pyproject.toml puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import snakefile_runner
import worker_groups
from snakefile_runner import require_spheroseg, run_snakemake, running


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Let snakefile_runner see which test runs (and so whether it is marked ``workflow``)."""
    with running(item):
        return (yield)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``--dist loadfile`` (the README's test command), keep each group of
    :func:`worker_groups.file_groups` on one worker; xdist's own choice otherwise."""
    return worker_groups.make_scheduler(config, log) if config.getvalue("dist") == "loadfile" else None


@pytest.fixture(scope="session", name="run_snakemake")
def run_snakemake_fixture() -> Callable[..., object]:
    """:func:`snakefile_runner.run_snakemake`, for tests that take their helpers as fixtures."""
    return snakefile_runner.run_snakemake


def _snapshot(workdir: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (size, mtime in ns) of every file of a run, Snakemake's own folder aside."""
    return {path.relative_to(workdir).as_posix(): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in workdir.rglob("*") if path.is_file() and ".snakemake" not in path.relative_to(workdir).parts}


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The embedded demo with the shipped config (the README's quick start), run once through
    the Snakefile and shared by every test that only reads it; yields its working directory.

    Tests that write into it or rerun it take :func:`demo_copy` instead; at the end of the
    session every file of the run (``.snakemake/`` aside) must be as the demo left it.
    """
    require_spheroseg()
    workdir = tmp_path_factory.mktemp("demo")
    run_snakemake(workdir, "--cores", "2")
    written = _snapshot(workdir)
    yield workdir
    changed = sorted(set(written.items()) ^ set(_snapshot(workdir).items()))
    assert not changed, f"a test changed the shared demo run (use demo_copy): {changed[:10]}"


@pytest.fixture
def demo_copy(demo_run: Path, tmp_path: Path) -> Path:
    """A copy of the shared demo run (files, times and Snakemake's records), for one test to change."""
    return Path(shutil.copytree(demo_run, tmp_path / "demo", symlinks=True))
