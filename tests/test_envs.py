"""The conda environments of `--sdm conda` install this checkout of spheroseg.

conda is not installed where these tests run, so they check what can be checked without it:
the YAML, that every rule's environment has the pip entry, and that pip, run the way conda
runs it (the pip specs written to a requirements file beside Snakemake's copy of the
environment file, pip started in that folder), resolves the entry to this repository.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ENVS = sorted((REPO / "envs").glob("*.yaml"))
PIP_ENTRY = re.compile(r"^-e \$\{SPHEROSEG_ROOT\}(\[[a-z,]+\])?$")


def pip_specs(env_file: Path) -> list[str]:
    dependencies = yaml.safe_load(env_file.read_text())["dependencies"]
    return [spec for item in dependencies if isinstance(item, dict) for spec in item.get("pip", [])]


def rule_envs() -> set[Path]:
    found = set()
    for rules in (REPO / "workflow" / "rules").glob("*.smk"):
        for match in re.finditer(r'conda:\s*\n\s*"([^"]+)"', rules.read_text()):
            found.add((rules.parent / match.group(1)).resolve())
    return found


@pytest.mark.parametrize("env_file", ENVS, ids=[path.stem for path in ENVS])
def test_environment_pins_python_and_pip_and_installs_spheroseg(env_file):
    env = yaml.safe_load(env_file.read_text())
    assert env["channels"] == ["conda-forge", "nodefaults"]
    names = [item.split("=")[0] for item in env["dependencies"] if isinstance(item, str)]
    assert {"python", "pip"} <= set(names)
    assert all("=" in item for item in env["dependencies"] if isinstance(item, str)), "every conda package pinned"
    specs = pip_specs(env_file)
    assert len(specs) == 1 and PIP_ENTRY.match(specs[0]), specs


# conda-forge names of the package's pip dependencies (where they differ)
CONDA_NAMES = {"pytorch": "torch", "pytorch-cpu": "torch", "matplotlib-base": "matplotlib"}


def declared_dependencies(extras: list[str]) -> set[str]:
    """Distribution names (lower case) of pyproject's dependencies and of `extras`."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + [spec for extra in extras for spec in project["optional-dependencies"][extra]]
    return {re.split(r"[<>=!~\[ ;]", spec, maxsplit=1)[0].lower() for spec in specs}


@pytest.mark.parametrize("env_file", ENVS, ids=[path.stem for path in ENVS])
def test_every_conda_package_is_a_declared_dependency(env_file):
    """An environment carries only what the package needs: envs/torch.yaml kept dask after
    the package stopped using it (issue 17 moved it to the bench extra)."""
    env = yaml.safe_load(env_file.read_text())
    extras = (PIP_ENTRY.match(pip_specs(env_file)[0]).group(1) or "[]").strip("[]").split(",")
    declared = declared_dependencies([extra for extra in extras if extra])
    conda = {CONDA_NAMES.get(name, name) for item in env["dependencies"] if isinstance(item, str)
             for name in [item.split("=")[0]] if name not in ("python", "pip")}
    assert conda <= declared, f"not dependencies of spheroseg{extras}: {sorted(conda - declared)}"


def test_every_rule_uses_an_environment_that_installs_spheroseg():
    used = rule_envs()
    assert used and used <= {path.resolve() for path in ENVS}
    assert all(pip_specs(path) for path in used)


def test_the_snakefile_sets_the_variable_the_environments_expand():
    common = (REPO / "workflow" / "rules" / "common.smk").read_text()
    assert "os.environ.update(SPHEROSEG_ROOT=str(Path(workflow.basedir).resolve()))" in common


@pytest.mark.parametrize("env_file", ENVS, ids=[path.stem for path in ENVS])
def test_pip_resolves_the_entry_to_this_repository_from_snakemakes_conda_folder(env_file, tmp_path):
    # Snakemake copies the env file to <workdir>/.snakemake/conda/<hash>.yaml; conda writes the
    # pip specs to condaenv.*.requirements.txt there and runs pip in that folder.
    conda_folder = tmp_path / "elsewhere" / ".snakemake" / "conda"
    conda_folder.mkdir(parents=True)
    requirements = conda_folder / "condaenv.test.requirements.txt"
    requirements.write_text("\n".join(pip_specs(env_file)) + "\n")
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-index",
               "--no-build-isolation", "--quiet", "--report", str(report), "-r", requirements.name]
    env = dict(os.environ, SPHEROSEG_ROOT=str(REPO), PIP_DISABLE_PIP_VERSION_CHECK="1")
    result = subprocess.run(command, cwd=conda_folder, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (install,) = json.loads(report.read_text())["install"]
    assert install["metadata"]["name"] == "spheroseg"
    assert install["download_info"]["url"] == REPO.as_uri()
    assert install["download_info"]["dir_info"] == {"editable": True}
    extras = re.findall(r"\[([a-z,]+)\]", pip_specs(env_file)[0])
    assert install.get("requested_extras", []) == (extras[0].split(",") if extras else [])
