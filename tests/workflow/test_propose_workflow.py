"""The human-in-the-loop through the Snakefile: `snakemake propose` writes pairs, a person (this
test) corrects the masks, the next run with training on fine-tunes, predicts and re-measures,
a second run does nothing, and a later propose never overwrites a corrected mask."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

# Six Snakemake runs, one of them training: minutes on a quiet laptop, more on a shared machine.
pytestmark = [pytest.mark.workflow, pytest.mark.slow, pytest.mark.timeout(2400)]

DEMO = {"folder": "resources/demo", "positions": {"p0": 1}, "timepoints": 3, "size": [64, 64],
        "seed": 0, "pixel_size_um": 4.0, "time_interval_s": 3600, "artefact": None}
# Explicit keys win over the finetune recipe: one tiny epoch keeps the test fast.
TRAINING = {"annotations": "annotations", "epochs": 1, "steps_per_epoch": 2, "batch_size": 2, "patch_size": 32}


def _config(workdir: Path, name: str, **sections: object) -> str:
    """Write a config file with the tiny demo and `sections`; return its path."""
    (workdir / name).write_text(yaml.safe_dump({"demo": DEMO, **sections}))
    return str(workdir / name)


def _planned(output: str) -> set[str]:
    """Rule names a dry run would execute."""
    return set(re.findall(r"^\s*(?:local)?rule (\w+):", output, flags=re.MULTILINE))


def _correct(mask_path: Path) -> np.ndarray:
    """What a person does in napari: paint the mask anew (a disk); returns what was saved."""
    mask = tifffile.imread(mask_path)
    yy, xx = np.indices(mask.shape)
    corrected = (((yy - 30) ** 2 + (xx - 30) ** 2) <= 15 ** 2).astype(np.uint8)
    tifffile.imwrite(mask_path, corrected, imagej=True, resolution=(0.25, 0.25), metadata={"unit": "um"})
    return corrected


@pytest.fixture(scope="module")
def loop(tmp_path_factory, run_snakemake):
    """A workdir after: plain run, propose, corrections, training run; with the outputs seen."""
    if shutil.which("spheroseg", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("the spheroseg command is not installed next to this Python")
    workdir = tmp_path_factory.mktemp("propose-loop")
    off = _config(workdir, "off.yaml", training={**TRAINING, "enabled": False}, propose={"n": 2})
    on = _config(workdir, "on.yaml", training={**TRAINING, "enabled": True}, propose={"n": 2})
    # The demo's 3 positions (p0 here, pos0 and pos1 from config/config.yaml) x 3 frames: ask for
    # all 9, so the 2 corrected frames must be met and skipped.
    every = _config(workdir, "every.yaml", training={**TRAINING, "enabled": True}, propose={"n": 9})
    seen = {"plain": run_snakemake(workdir, "--configfile", off, "--cores", "2")}
    seen["plain_written"] = (workdir / "annotations").exists()
    seen["propose"] = run_snakemake(workdir, "--configfile", off, "--cores", "2", "propose")
    masks = sorted((workdir / "annotations" / "masks").glob("*.tif"))
    seen["first_masks"] = [path.name for path in masks]
    seen["corrected"] = {path: _correct(path) for path in masks}
    seen["train_plan"] = run_snakemake(workdir, "--configfile", on, "-n")
    seen["train"] = run_snakemake(workdir, "--configfile", on, "--cores", "2")
    seen["again"] = run_snakemake(workdir, "--configfile", on, "-n")
    seen["propose_again"] = run_snakemake(workdir, "--configfile", every, "--cores", "2", "propose")
    return workdir, seen


def test_a_plain_run_never_proposes(loop):
    workdir, seen = loop
    assert seen["plain_written"] is False
    assert "propose" not in _planned(seen["plain"].stdout + seen["plain"].stderr)


def test_propose_writes_pairs_training_reads(loop):
    from spheroseg.training.data import find_annotation_pairs

    workdir, seen = loop
    assert len(seen["first_masks"]) == 2
    pairs = [p for p in find_annotation_pairs(workdir / "annotations") if f"{p.name}.tif" in seen["first_masks"]]
    assert len(pairs) == 2 and all(re.fullmatch(r"\w+_t\d{4}", p.name) for p in pairs)
    assert "proposed 2 frame(s)" in seen["propose"].stderr
    with tifffile.TiffFile(pairs[0].image_path) as tif:
        x_resolution = tif.pages[0].tags["XResolution"].value
    assert x_resolution[0] / x_resolution[1] == pytest.approx(0.25)  # 4 µm pixels


def test_corrected_masks_train_predict_and_remeasure(loop):
    workdir, seen = loop
    assert {"train", "tile", "predict", "stitch", "segment", "measure"} <= _planned(seen["train_plan"].stdout)
    assert not {"demo", "ingest", "propose"} & _planned(seen["train_plan"].stdout)
    card = yaml.safe_load(next((workdir / "models").glob("retrained.*.json")).read_text())
    assert card["training"]["recipe"] == "finetune" and card["training"]["init"]["model"].endswith("default.pt")
    # 2 corrected pairs, fewer than the recipe's val_min_pairs: both train, none validates.
    assert card["training"]["val_names"] == [] and len(card["training"]["train_names"]) == 2
    assert card["training"]["init_metrics"] is None and card["training"]["config"]["frozen_norm"] is True
    page = next(workdir.glob("results/*/report/run_parameters.html")).read_text()
    assert "Annotated frames" in page and page.count("<td>corrected</td>") == 2
    assert page.count("<td>training</td>") == 2 and "No frame validated: with fewer than 5 pairs all train" in page


def test_a_second_rerun_does_nothing(loop):
    assert "Nothing to be done" in loop[1]["again"].stdout + loop[1]["again"].stderr


def test_a_later_propose_never_overwrites_a_corrected_mask(loop):
    workdir, seen = loop
    err = seen["propose_again"].stderr
    assert "skipped 2 frame(s) whose mask exists" in err and "proposed 7 frame(s)" in err
    for path, corrected in seen["corrected"].items():
        assert np.array_equal(tifffile.imread(path), corrected)
    assert len(list((workdir / "annotations" / "masks").glob("*.tif"))) == 9


@pytest.mark.parametrize(("sections", "match"), [
    ({"propose": {"n": 0}}, r"propose.*\bn\b|minimum"),
    ({"training": {"recipe": "fast"}}, r"recipe"),
    ({"propose": {"n": 2}}, r"training\.annotations"),
    ({"training": {"annotations": "afile"}}, r"training\.annotations must be a folder .*'afile' is a file "
                                              r"\(config key 'training\.annotations'\)"),
], ids=["n-zero", "unknown-recipe", "no-annotation-folder", "annotation-folder-is-a-file"])
def test_bad_config_is_refused_with_the_key_named(tmp_path, run_snakemake, sections, match):
    (tmp_path / "afile").write_text("not a folder")
    config = _config(tmp_path, "bad.yaml", **sections)
    result = run_snakemake(tmp_path, "--configfile", config, "-n", "propose", check=False)
    assert result.returncode != 0
    assert re.search(match, result.stdout + result.stderr), (result.stdout + result.stderr)[-3000:]
    assert not (tmp_path / "annotations").exists()


@pytest.mark.parametrize(("training", "present", "absent"), [
    ({}, ["--recipe finetune", "--init ", "default.pt"], ["--epochs 40", "--intensity-augment", "--no-channels-last"]),
    ({"epochs": 5}, ["--recipe finetune", "--epochs 5"], []),
    ({"recipe": "custom"}, ["--recipe custom", "--epochs 40"], ["--init"]),
    ({"channels_last": False}, ["--recipe finetune", "--no-channels-last"], []),
], ids=["finetune-from-model", "explicit-key-wins", "custom-from-scratch", "nchw"])
def test_recipe_reaches_the_train_command(tmp_path, run_snakemake, training, present, absent):
    folder = tmp_path / "annotations"
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True)
        for index in range(2):
            tifffile.imwrite(folder / sub / f"{index}.tif", np.eye(32, dtype=np.uint8))
    config = _config(tmp_path, "c.yaml", training={"enabled": True, "annotations": "annotations", **training})
    output = run_snakemake(tmp_path, "--configfile", config, "-n", "-p").stdout
    command = next(line for line in output.splitlines() if "spheroseg train " in line)
    assert all(text in command for text in present) and not any(text in command for text in absent), command
