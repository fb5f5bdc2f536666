from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the repository's Snakefile in `workdir` with the current interpreter's snakemake."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
               "--directory", str(workdir), *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1200)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result


@pytest.fixture(scope="session")
def run_snakemake():
    """The `snakemake(workdir, *args)` helper, for test modules (conftest is not importable)."""
    return snakemake


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """The embedded demo, run once through the Snakefile; returns its working directory."""
    if shutil.which("spheroseg", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("the spheroseg command is not installed next to this Python")
    workdir = tmp_path_factory.mktemp("demo")
    snakemake(workdir, "--cores", "2")
    return workdir
