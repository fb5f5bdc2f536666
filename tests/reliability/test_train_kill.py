"""kill -9 of training after a checkpoint, then the same command: it resumes and ends with
exactly the weights of an uninterrupted run.

`spheroseg train` is driven directly with a tiny network so that this stays a CI test; a
workflow run with ``training.enabled`` takes minutes per epoch on CPU because the train rule
fixes 50 steps of 8 x 256 x 256 patches (the soak benchmark covers it). When the config
gains ``training.steps_per_epoch``, the workflow-level test below runs too.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from snakefile_runner import SPHEROSEG

# torch.jit is deprecated in torch >= 2.13 but is the model format spheroseg ships.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning")
TINY = ["--synthetic", "4", "--synthetic-size", "64", "--patch-size", "64", "--batch-size", "2",
        "--steps-per-epoch", "3", "--epochs", "3", "--patience", "0", "--depth", "2", "--base-width", "4",
        "--seed", "0", "--device", "cpu", "--no-progress"]


def _train_command(output: Path) -> list[str]:
    return [SPHEROSEG, "train", *TINY, "--output", str(output)]


def _weights(path: Path) -> dict:
    import torch

    return torch.jit.load(str(path), map_location="cpu").state_dict()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("train-reference")
    result = subprocess.run(_train_command(folder / "model.pt"), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / "model.pt"


@pytest.mark.slow
def test_killed_training_resumes_to_the_same_weights(uninterrupted, faults, tmp_path):
    model = tmp_path / "model.pt"
    kill = faults.kill_when_present(_train_command(model), tmp_path, ["model.checkpoints/last.pt"],
                                    log_path=tmp_path / "killed.log")
    assert not model.exists() and not model.with_suffix(".json").exists(), "a killed train left a model"
    resumed = subprocess.run(_train_command(model), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from checkpoint" in resumed.stderr, f"did not resume ({kill.seconds:.1f} s):\n{resumed.stderr}"
    got, want = _weights(model), _weights(uninterrupted)
    assert got.keys() == want.keys()
    assert all(got[k].equal(want[k]) for k in want), "resumed training must give bit-identical weights"
    card, reference = (json.loads(p.with_suffix(".json").read_text()) for p in (model, uninterrupted))
    assert card["metrics"] == reference["metrics"]
    assert not model.with_suffix(".checkpoints").exists(), "checkpoints are removed after success"


def _fast_training_configurable() -> bool:
    schema = yaml.safe_load((Path(__file__).resolve().parents[2] / "workflow/schemas/config.schema.yaml").read_text())
    return "steps_per_epoch" in schema["properties"]["training"]["properties"]


@pytest.mark.workflow
@pytest.mark.slow
@pytest.mark.skipif(not _fast_training_configurable(),
                    reason="training.steps_per_epoch is not a config key yet: one epoch of the train rule "
                    "takes minutes on CPU (covered by benchmarks/soak_benchmark.py)")
def test_workflow_killed_during_train_reruns_to_the_same_csvs(faults, tmp_path_factory):
    annotations = tmp_path_factory.mktemp("annotations")
    subprocess.run([SPHEROSEG, "demo", "--training-set", "4", "--size", "64", "64", "--output", str(annotations)],
                   check=True, capture_output=True)
    training = {"enabled": True, "annotations": str(annotations), "epochs": 3,
                "steps_per_epoch": 2, "batch_size": 2, "patch_size": 64}
    reference = tmp_path_factory.mktemp("train-uninterrupted")
    faults.run(reference, faults.write_config(reference, training=training))
    workdir = tmp_path_factory.mktemp("train-killed")
    config = faults.write_config(workdir, training=training)
    faults.run_until_killed(workdir, config, "models/*.checkpoints/last.pt")
    assert not list((workdir / "models").glob("*.pt")), "a killed train left a model"
    faults.resume(workdir, config)
    faults.assert_same_csvs(workdir, reference)
