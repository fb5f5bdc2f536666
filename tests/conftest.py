"""Suite-wide hooks and fixtures: the workflow-marker check and the shared demo run.

Helpers that run the Snakefile live in ``tests/snakefile_runner.py`` (importable: the pytest
block of pyproject.toml puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from snakefile_runner import require_spheroseg, run_snakemake, running


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Let snakefile_runner see which test runs (and so whether it is marked ``workflow``)."""
    with running(item):
        return (yield)


def _snapshot(workdir: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (size, mtime in ns) of every file of a run, Snakemake's own folder aside."""
    return {path.relative_to(workdir).as_posix(): (path.stat().st_size, path.stat().st_mtime_ns)
            for folder in ("resources", "results") for path in (workdir / folder).rglob("*") if path.is_file()}


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The embedded demo with the shipped config (the README's quick start), run once through
    the Snakefile and shared by every test that only reads it; yields its working directory.

    A test that changes or reruns it works on a copy (``shutil.copytree``); at the end of the
    session the run's inputs and results must be as the demo left them.
    """
    require_spheroseg()
    workdir = tmp_path_factory.mktemp("demo")
    run_snakemake(workdir, "--cores", "2")
    written = _snapshot(workdir)
    yield workdir
    changed = sorted(set(written.items()) ^ set(_snapshot(workdir).items()))
    assert not changed, f"a test changed the shared demo run (copy it instead): {changed[:10]}"
