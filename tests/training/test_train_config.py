"""The validation split and early stopping are reachable from the config (training.val_fraction,
training.val_names, training.patience): dry runs of the Snakefile show them on the train command,
and validation names that are not annotation pairs stop the run before any job."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml
from snakefile_runner import run_snakemake

from spheroseg import preflight

pytestmark = pytest.mark.workflow

DEMO = {"folder": "resources/demo", "positions": {"p0": 1}, "timepoints": 2, "size": [64, 64],
        "seed": 0, "pixel_size_um": 4.0, "time_interval_s": 3600, "artefact": None}


def annotations(folder: Path, count: int = 4) -> Path:
    """`count` tiny image/mask pairs named 000, 001, ..."""
    for index in range(count):
        mask = np.zeros((32, 32), np.uint8)
        mask[8:20, 8 + index:20 + index] = 1
        for sub, data in (("images", (40 + 150 * mask).astype(np.uint8)), ("masks", mask)):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(folder / sub / f"{index:03d}.tif", data)
    return folder


def dry_run(workdir: Path, training: dict) -> subprocess.CompletedProcess[str]:
    """`snakemake -n -p` with the demo and training enabled on workdir/annotations."""
    annotations(workdir / "annotations")
    settings = {"enabled": True, "annotations": "annotations", "epochs": 1, **training}
    (workdir / "config.yaml").write_text(yaml.safe_dump({"demo": DEMO, "training": settings}))
    return run_snakemake(workdir, "--configfile", workdir / "config.yaml", "-n", "-p", "--cores", "1", check=False,
                         timeout=600)


def train_command(result: subprocess.CompletedProcess[str]) -> str:
    """The printed `spheroseg train ...` shell command of a dry run."""
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if "spheroseg train " in line]
    assert len(lines) == 1, result.stdout[-3000:]
    return lines[0]


@pytest.mark.parametrize(("training", "present", "absent"), [
    ({"val_names": ["001", "003"], "patience": 3}, ["--val-names 001 003", "--patience 3"],
     ["--val-fraction"]),
    ({"val_fraction": 0.5, "patience": 0}, ["--val-fraction 0.5", "--patience 0"], ["--val-names"]),
    ({}, [], ["--val-fraction", "--val-names", "--patience"]),
], ids=["names-and-patience", "fraction-no-early-stop", "defaults"])
def test_validation_split_and_patience_reach_the_train_command(tmp_path, training, present, absent):
    command = train_command(dry_run(tmp_path, training))
    for flag in present:
        assert flag in command
    for flag in absent:
        assert flag not in command  # defaults: the library's own (val_fraction 0.2, patience 10)


def test_unknown_validation_names_stop_the_run_before_any_job(tmp_path):
    result = dry_run(tmp_path, {"val_names": ["001", "nope"]})
    console = result.stdout + result.stderr
    assert result.returncode != 0
    assert "training.val_names" in console and "'nope'" in console
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(("names", "match"), [
    (["007"], r"training.val_names: validation names must be annotation names, got unknown \['007'\]"),
    (["000", "001", "002", "003"], "training.val_names: at least one annotation pair must remain")],
    ids=["unknown", "all"])
def test_check_annotations_checks_validation_names(tmp_path, names, match):
    folder = annotations(tmp_path / "annotations")
    preflight.check_annotations(str(folder), val_names=["001"])
    with pytest.raises(ValueError, match=match):
        preflight.check_annotations(str(folder), val_names=names)


@pytest.mark.parametrize(("spoil", "match"), [
    (lambda folder: tifffile.imwrite(folder / "masks" / "002.tif", np.zeros((16, 16), np.uint8)),
     r"training.annotations: image and mask must have the same size, got \(32, 32\) .*002.tif and \(16, 16\)"),
    (lambda folder: (folder / "masks" / "002.tif").write_bytes(b""), r"training.annotations: could not read .*002.tif"),
    (lambda folder: tifffile.imwrite(folder / "masks" / "002.tif", np.zeros((32, 32), np.uint8)),
     r"no foreground anywhere .*002.tif.*config key 'training.allow_empty_masks'"),
], ids=["other-size", "zero-byte", "empty-mask"])
def test_check_annotations_reads_every_pair_before_any_job(tmp_path, spoil, match):
    """What the train job would refuse is refused when the DAG is built (workflow audit T06-T08)."""
    folder = annotations(tmp_path / "annotations")
    spoil(folder)
    with pytest.raises(ValueError, match=match):
        preflight.check_annotations(str(folder))


def test_an_empty_mask_passes_when_allowed(tmp_path):
    folder = annotations(tmp_path / "annotations")
    tifffile.imwrite(folder / "masks" / "002.tif", np.zeros((32, 32), np.uint8))
    preflight.check_annotations(str(folder), allow_empty=True)


def test_reversed_percentiles_stop_the_run_before_any_job(tmp_path):
    result = dry_run(tmp_path, {"recipe": "custom", "percentiles": [99.8, 1.0]})
    console = result.stdout + result.stderr
    assert result.returncode != 0
    assert "training.percentiles must be [low, high] with low < high, got [99.8, 1.0]" in console, console[-2000:]
    assert not (tmp_path / "results").exists()
