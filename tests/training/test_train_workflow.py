"""Rerun semantics of the train rule, through the Snakefile (tiny demo, tiny annotations)."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from snakefile_runner import require_spheroseg, run_snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

CONFIG = """
demo: {folder: resources/demo, positions: {p0: 1}, timepoints: 2, size: [64, 64], seed: 0,
       pixel_size_um: 4.0, time_interval_s: 3600, artefact: null}
training: {enabled: true, annotations: annotations, epochs: 1, seed: 0}
"""


def _snakemake(workdir: Path, *args: str, configfile: str = "test_config.yaml") -> str:
    """Run the Snakefile in `workdir`; return stdout + stderr (fails the test on error)."""
    result = run_snakemake(workdir, "--configfile", workdir / configfile, *args)
    return result.stdout + result.stderr


def _planned(output: str) -> set[str]:
    """Rule names a dry run would execute."""
    return set(re.findall(r"^\s*(?:local)?rule (\w+):", output, flags=re.MULTILINE))


def _write_pair(folder: Path, index: int) -> None:
    """One 32x32 disk image and its 0/1 mask in the images/ + masks/ layout."""
    import numpy as np
    import tifffile

    yy, xx = np.indices((32, 32))
    mask = ((yy - 12 - index % 8) ** 2 + (xx - 16) ** 2 <= 49).astype(np.uint8)
    noise = np.random.default_rng(index).normal(0, 10, mask.shape)
    for sub, data in (("images", np.clip(40 + 150 * mask + noise, 0, 255).astype(np.uint8)), ("masks", mask)):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(folder / sub / f"{index:03d}.tif", data)


@pytest.fixture(scope="module")
def trained_workdir(tmp_path_factory) -> Path:
    """A workdir where the demo ran once with a model trained on three annotation pairs."""
    require_spheroseg()
    workdir = tmp_path_factory.mktemp("train-workflow")
    (workdir / "test_config.yaml").write_text(CONFIG)
    for index in range(3):
        _write_pair(workdir / "annotations", index)
    _snakemake(workdir, "--cores", "2")
    return workdir


def test_trained_model_is_written_protected(trained_workdir):
    models = sorted((trained_workdir / "models").glob("retrained.*.pt"))
    assert len(models) == 1 and models[0].with_suffix(".json").is_file()
    assert stat.S_IMODE(models[0].stat().st_mode) & 0o222 == 0


def test_no_change_reruns_nothing(trained_workdir):
    assert "Nothing to be done" in _snakemake(trained_workdir, "-n")


def test_same_model_content_does_not_rerun_inference(trained_workdir):
    model = next((trained_workdir / "models").glob("retrained.*.pt"))
    os.utime(model)  # newer file, same content
    assert "Nothing to be done" in _snakemake(trained_workdir, "-n")


def test_changed_training_setting_trains_a_new_model_beside_the_protected_one(trained_workdir):
    (trained_workdir / "mild.yaml").write_text(CONFIG.replace("seed: 0}", "seed: 0, intensity_augment: mild}"))
    existing = next((trained_workdir / "models").glob("retrained.*.pt"))
    output = _snakemake(trained_workdir, "-n", "-p", configfile="mild.yaml")  # one dry run, with the commands
    assert {"train", "predict", "segment", "measure"} <= _planned(output), output
    planned_models = set(re.findall(r"^\s*output: models/(retrained\.\w+\.pt)", output, flags=re.MULTILINE))
    assert len(planned_models) == 1 and existing.name not in planned_models, planned_models
    assert "--intensity-augment mild" in output


def test_new_annotation_pair_retrains_and_reruns_downstream(trained_workdir):
    _write_pair(trained_workdir / "annotations", 99)
    planned = _planned(_snakemake(trained_workdir, "-n"))
    assert {"train", "predict", "stitch", "segment", "measure"} <= planned, planned
    assert "demo" not in planned and "ingest" not in planned
