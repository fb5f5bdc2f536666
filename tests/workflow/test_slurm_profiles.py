"""The cluster profiles, checked without a cluster (issue 5).

A dry run of the real Snakefile through each profile shows the resources Snakemake hands
to the SLURM plugin for every job (training on, so train is in the DAG too): GPU rules go
to partition gpu with `gpu=1` (sbatch --gpus=1), everything else to partition cpu without
a GPU. tests/workflow/test_slurm.py then proves the same routing on a real scheduler with
profiles/slurm-ci, which must stay a copy of profiles/slurm apart from the CI values.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml
from snakefile_runner import REPO, run_snakemake

PROFILES = REPO / "profiles"
GPU_RULES = {"predict", "train"}
SLURM_PROFILES = ["slurm", "slurm-ci"]
# Settings in which the CI copy may differ from profiles/slurm (sizes, status query, account).
CI_ONLY = re.compile(
    r"^(latency-wait|slurm-init-seconds-before-status-checks|slurm-status-command|slurm-no-account"
    r"|slurm-keep-successful-logs|default-resources\.slurm_account|group-components\.\w+"
    r"|(default-resources|set-resources\.\w+)\.(mem_mb|runtime|cpus_per_task))$"
)


def load_profile(name: str) -> dict:
    return yaml.safe_load((PROFILES / name / "config.yaml").read_text(encoding="utf-8"))


def flatten(mapping: dict, prefix: str = "") -> dict[str, object]:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    flat: dict[str, object] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def dry_run(tmp_path: Path, profile: str) -> dict[str, list[dict[str, str]]]:
    """Rule name -> resources of each of its jobs in a forced dry run of the demo with training on."""
    annotations = tmp_path / "annotations"
    annotations.mkdir(exist_ok=True)
    mask = np.zeros((16, 16), np.uint8)
    mask[4:12, 4:12] = 1
    tifffile.imwrite(annotations / "a.tif", (40 + 150 * mask).astype(np.uint8))  # the DAG reads every pair
    tifffile.imwrite(annotations / "a_mask.tif", mask)
    (tmp_path / "model.pt").write_bytes(b"")
    result = run_snakemake(tmp_path, "--profile", PROFILES / profile, "--dry-run", "--forceall", "--config",
                           "model=model.pt", f"training={{enabled: true, annotations: {annotations}, epochs: 1, recipe: custom}}",
                           timeout=300)
    jobs: dict[str, list[dict[str, str]]] = {}
    rule = None
    for line in (result.stdout + result.stderr).splitlines():
        if match := re.match(r"\s*(?:local)?rule (\w+):$", line):
            rule = match.group(1)
        elif rule and (match := re.match(r"\s*resources: (.*)$", line)):
            jobs.setdefault(rule, []).append(dict(item.split("=", 1) for item in match.group(1).split(", ")))
            rule = None
    return jobs


@pytest.fixture(scope="module", params=SLURM_PROFILES)
def slurm_dry_run(request, tmp_path_factory):
    """(profile, rule name -> resources of its jobs) from a dry run through each SLURM profile."""
    return request.param, dry_run(tmp_path_factory.mktemp(request.param), request.param)


@pytest.mark.workflow
def test_dry_run_has_every_rule(slurm_dry_run):
    _, jobs = slurm_dry_run
    assert {"ingest", "tile", "predict", "stitch", "segment", "measure", "aggregate", "train"} <= jobs.keys()


@pytest.mark.workflow
def test_gpu_rules_go_to_gpu_partition_with_one_gpu(slurm_dry_run):
    _, jobs = slurm_dry_run
    for rule in GPU_RULES:
        for resources in jobs[rule]:
            assert resources["slurm_partition"] == "gpu", (rule, resources)
            assert resources["gpu"] == "1", (rule, resources)


@pytest.mark.workflow
def test_cpu_rules_go_to_cpu_partition_without_gpu(slurm_dry_run):
    _, jobs = slurm_dry_run
    for rule, rule_jobs in jobs.items():
        if rule in GPU_RULES or rule == "all":
            continue
        for resources in rule_jobs:
            assert resources["slurm_partition"] == "cpu", (rule, resources)
            assert "gpu" not in resources, (rule, resources)


@pytest.mark.workflow
def test_one_gpu_mechanism_only(slurm_dry_run):
    """`gpu` becomes --gpus; `gres` would add --gres as well, and `gpus` is silently ignored."""
    _, jobs = slurm_dry_run
    for rule, rule_jobs in jobs.items():
        for resources in rule_jobs:
            assert not {"gres", "gpus", "gpu_model"} & resources.keys(), (rule, resources)


@pytest.mark.parametrize("profile", SLURM_PROFILES)
@pytest.mark.parametrize("section", ["default-resources", "set-resources.predict", "set-resources.train"])
@pytest.mark.parametrize("resource", ["mem_mb", "runtime"])
def test_memory_and_runtime_grow_with_attempt(profile, section, resource):
    values = flatten(load_profile(profile))
    expression = str(values[f"{section}.{resource}"])
    per_attempt = [eval(expression, {}, {"attempt": attempt}) for attempt in (1, 2, 3)]  # noqa: S307 (our file)
    assert per_attempt[0] > 0 and per_attempt[0] < per_attempt[1] < per_attempt[2], (expression, per_attempt)


@pytest.mark.parametrize("profile", SLURM_PROFILES)
def test_retries_and_rerun_settings(profile):
    settings = load_profile(profile)
    assert settings["executor"] == "slurm"
    assert settings["retries"] >= 1 and settings["rerun-incomplete"] is True and settings["latency-wait"] >= 5


def test_ci_profile_is_the_slurm_profile_apart_from_sizes():
    real, ci = flatten(load_profile("slurm")), flatten(load_profile("slurm-ci"))
    differing = {key for key in real.keys() | ci.keys() if real.get(key) != ci.get(key)}
    assert {key for key in differing if not CI_ONLY.match(key)} == set()
    assert ci["slurm-status-command"] == "squeue", "the CI cluster has no slurmdbd, so no sacct"


def defined_rules() -> set[str]:
    """Rules defined in workflow/rules/*.smk (included in the Snakefile or not yet)."""
    return {name for path in (REPO / "workflow" / "rules").glob("*.smk")
            for name in re.findall(r"^\s*rule (\w+):", path.read_text(encoding="utf-8"), flags=re.MULTILINE)}


@pytest.mark.parametrize("profile", SLURM_PROFILES)
def test_groups_hold_only_cpu_rules_of_the_workflow(profile):
    settings = load_profile(profile)
    grouped = set(settings["groups"])
    assert {"ingest", "tile", "stitch", "segment", "measure"} <= grouped
    assert grouped <= defined_rules(), f"groups name unknown rules (silently ignored): {grouped - defined_rules()}"
    assert not grouped & GPU_RULES, "a GPU rule in a group would drag CPU rules onto GPU nodes"
    assert set(settings["group-components"]) == set(settings["groups"].values())


def test_no_auto_loaded_default_profile():
    """Snakemake loads profiles/default beside the Snakefile on top of --profile: it could undo the routing."""
    assert not (PROFILES / "default").exists()


@pytest.mark.workflow
def test_local_profile_runs_one_gpu_job_at_a_time(tmp_path):
    settings = load_profile("local")
    assert settings["cores"] == "all" and settings["resources"] == {"gpu": 1}
    jobs = dry_run(tmp_path, "local")
    assert all(resources["gpu"] == "1" for rule in GPU_RULES for resources in jobs[rule])
    assert all("gpu" not in resources for rule, rule_jobs in jobs.items() if rule not in GPU_RULES
               for resources in rule_jobs)
