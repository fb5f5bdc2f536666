"""The helper that runs the Snakefile: only for tests marked ``workflow``, and the only way in."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from snakefile_runner import SNAKEFILE, run_snakemake, snakemake_command

TESTS = Path(__file__).resolve().parent


def test_running_the_snakefile_without_the_workflow_marker_fails(tmp_path):
    workdir = tmp_path / "run"
    expected = r"test_snakefile_runner\.py::test_running_the_snakefile_without_the_workflow_marker_fails runs the " \
               r"Snakefile but is not marked @pytest\.mark\.workflow"
    with pytest.raises(pytest.fail.Exception, match=expected):
        run_snakemake(workdir, "--dry-run")
    assert not workdir.exists(), "Snakemake must not start"


@pytest.mark.workflow
def test_a_workflow_test_gets_the_command(tmp_path):
    assert snakemake_command(tmp_path, "--cores", 2, Path("out.csv")) == [
        sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(tmp_path),
        "--cores", "2", "out.csv"]


def _snakemake_literals(path: Path) -> list[str]:
    """``file:line`` of each "snakemake" in a list or tuple display (a hand-built command) in a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    displays = [node for node in ast.walk(tree) if isinstance(node, (ast.List, ast.Tuple))]
    return [f"{path.relative_to(TESTS)}:{node.lineno}" for node in displays
            if any(isinstance(item, ast.Constant) and item.value == "snakemake" for item in node.elts)]


def test_every_snakemake_command_of_the_tests_comes_from_snakefile_runner():
    exempt = {"snakefile_runner.py", Path(__file__).name}
    modules = [path for path in sorted(TESTS.rglob("*.py")) if path.name not in exempt]
    found = [hit for path in modules for hit in _snakemake_literals(path)]
    assert found == [], "build Snakemake commands with snakefile_runner (it checks the workflow marker)"
    assert _snakemake_literals(TESTS / "snakefile_runner.py"), "the scan must see the runner's own command"
