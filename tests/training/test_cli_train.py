"""``spheroseg train`` end to end on tiny data: outputs, bad input, fine-tuning, kill and resume."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from spheroseg.cli import main
from spheroseg.modelcard import read_verified_card, sha256_file

TINY = ["--epochs", "2", "--steps-per-epoch", "2", "--batch-size", "2", "--patch-size", "32", "--depth", "2",
        "--base-width", "4", "--device", "cpu", "--no-progress"]


def test_train_writes_model_card_log_and_curve(annotations, tmp_path):
    output = tmp_path / "models" / "mine.pt"
    assert main(["train", "--annotations", str(annotations), "--output", str(output), "--pixel-size-um", "0.5",
                 "--val-names", "004", "005", *TINY]) == 0
    card = read_verified_card(output)
    assert card["architecture"] == {"kind": "unet", "depth": 2, "base_width": 4, "in_channels": 1, "out_channels": 1}
    assert card["input"]["pixel_size_um"] == 0.5 and card["output"]["kind"] == "logits"
    assert card["training"]["val_names"] == ["004", "005"] and len(card["training"]["files"]) == 12
    assert card["training"]["files"][0] == {"path": "images/000.tif",
                                            "sha256": sha256_file(annotations / "images" / "000.tif")}
    assert 0.0 <= card["metrics"]["val_iou"] <= 1.0 and card["versions"]["torch"]
    assert sorted(p.name for p in output.parent.iterdir()) == [
        "mine.json", "mine.learning_curve.png", "mine.pt", "mine.training_log.csv"]  # checkpoints removed


def test_intensity_augment_level_reaches_the_model_card(annotations, tmp_path):
    output = tmp_path / "mild.pt"
    assert main(["train", "--annotations", str(annotations), "--output", str(output), "--intensity-augment", "mild",
                 *TINY]) == 0
    augment = read_verified_card(output)["training"]["augment"]
    assert augment["p_gamma"] == 0.0 and augment["contrast"] == [0.9, 1.1] and augment["p_elastic"] > 0


@pytest.mark.parametrize(("extra", "val_names"), [
    ([], ["003"]), (["--val-min-pairs", "7"], []), (["--recipe", "finetune", "--val-min-pairs", "6"], ["003"]),
], ids=["default-validates", "fewer-than-min-all-train", "option-wins-over-recipe"])
def test_val_min_pairs_decides_whether_a_pair_validates(annotations, tmp_path, extra, val_names):
    base = tmp_path / "base.pt"
    assert main(["train", "--annotations", str(annotations), "--output", str(base), *TINY]) == 0
    output = tmp_path / "m.pt"
    assert main(["train", "--annotations", str(annotations), "--output", str(output), "--init", str(base),
                 "--val-fraction", "0.2", *extra, *TINY]) == 0
    training = read_verified_card(output)["training"]
    assert training["val_names"] == val_names and len(training["train_names"]) == 6 - len(val_names)
    assert training["val_min_pairs"] == (int(extra[-1]) if extra else 2)
    assert (training["init_metrics"] is not None) == bool(val_names)  # the init model's "before" figures


def test_finetune_recipe_trains_on_all_of_few_pairs(annotations, tmp_path):
    base = tmp_path / "base.pt"
    assert main(["train", "--annotations", str(annotations), "--output", str(base), *TINY]) == 0
    four = tmp_path / "four"
    for sub in ("images", "masks"):
        (four / sub).mkdir(parents=True)
        for name in ("000.tif", "001.tif", "002.tif", "003.tif"):
            shutil.copy(annotations / sub / name, four / sub / name)
    output = tmp_path / "m.pt"
    assert main(["train", "--annotations", str(four), "--output", str(output), "--init", str(base),
                 "--recipe", "finetune", *TINY]) == 0
    training = read_verified_card(output)["training"]
    assert training["val_names"] == [] and len(training["train_names"]) == 4
    assert training["stop_reason"] == "reached 2 epochs" and training["val_min_pairs"] > 4


def test_finetune_recipe_normalises_proposed_frames_with_their_series_window(annotations, tmp_path, caplog):
    """Issue 18: the loop's recipe takes the time series' window for the frames propose wrote
    (recorded in proposals.json with the init model's normalisation), the rest alone."""
    base = tmp_path / "base.pt"
    assert main(["train", "--annotations", str(annotations), "--output", str(base), *TINY]) == 0
    series = {**read_verified_card(base)["input"]["normalization"], "scope": "series"}
    window = {"normalization": series, "low": 0.0, "top": 5000.0, "negate": False}
    (annotations / "proposals.json").write_text(json.dumps(
        {"proposals": {"000": {"normalization_window": window}, "001": {"normalization_window": window}}}))
    output = tmp_path / "m.pt"
    with caplog.at_level(logging.INFO, logger="spheroseg.training"):
        assert main(["train", "--annotations", str(annotations), "--output", str(output), "--init", str(base),
                     "--recipe", "finetune", *TINY]) == 0
    assert read_verified_card(output)["input"]["normalization"] == series
    assert re.search(r"normalization scope series: \d+ of \d+ pair\(s\) have no window", caplog.text)
    alone = re.search(r"normalised alone: (.*)", caplog.text).group(1).split(", ")
    assert "000" not in alone and "001" not in alone and "002" in alone
    plain = tmp_path / "plain.pt"
    assert main(["train", "--annotations", str(annotations), "--output", str(plain), "--init", str(base),
                 "--recipe", "finetune", "--normalization-scope", "image", *TINY]) == 0
    assert "scope" not in read_verified_card(plain)["input"]["normalization"]


def test_fine_tuning_keeps_the_init_architecture(annotations, tmp_path):
    base = tmp_path / "base.pt"
    assert main(["train", "--annotations", str(annotations), "--output", str(base), *TINY]) == 0
    tuned = tmp_path / "tuned.pt"
    args = ["train", "--annotations", str(annotations), "--output", str(tuned), "--init", str(base), *TINY]
    args[args.index("--base-width") + 1] = "8"  # ignored: fine-tuning keeps the init model's widths
    assert main(args) == 0
    card = read_verified_card(tuned)
    assert card["architecture"]["base_width"] == 4
    assert card["training"]["init"]["sha256"] == sha256_file(base)


@pytest.mark.parametrize(
    ("damage", "message"),
    [("mismatch", r"same size.*images/001.tif.*masks/001.tif"), ("no-mask", "images without a mask.*003.tif"),
     ("empty-mask", "no foreground anywhere.*masks/002.tif"), ("float-mask", "to binarise.*masks/000.tif"),
     ("empty-folder", "empty folder")],
    ids=["size-mismatch", "image-without-mask", "empty-mask", "non-binary-mask", "empty-folder"],
)
def test_bad_annotations_fail_before_training(annotations, tmp_path, capsys, damage, message):
    import tifffile

    if damage == "mismatch":
        tifffile.imwrite(annotations / "masks" / "001.tif", np.ones((16, 32), np.uint8))
    elif damage == "no-mask":
        (annotations / "masks" / "003.tif").unlink()
    elif damage == "empty-mask":
        tifffile.imwrite(annotations / "masks" / "002.tif", np.zeros((32, 32), np.uint8))
    elif damage == "float-mask":
        tifffile.imwrite(annotations / "masks" / "000.tif", np.linspace(0, 1, 1024, dtype=np.float32).reshape(32, 32))
    else:
        annotations = tmp_path / "nothing"
        annotations.mkdir()
    output = tmp_path / "bad.pt"
    assert main(["train", "--annotations", str(annotations), "--output", str(output), *TINY]) == 1
    error = capsys.readouterr().err
    assert error.startswith("spheroseg train: error:")
    assert not list(tmp_path.glob("bad*"))  # nothing written, not even checkpoints
    assert re.search(message, error), error


def test_binary_mask_kind_rejects_label_masks(annotations, tmp_path, capsys):
    import tifffile

    labels = np.zeros((32, 32), np.uint8)
    labels[2:8, 2:8], labels[20:30, 20:30] = 1, 2
    tifffile.imwrite(annotations / "masks" / "001.tif", labels)
    assert main(["train", "--annotations", str(annotations), "--output", str(tmp_path / "m.pt"),
                 "--mask-kind", "binary", *TINY]) == 1
    assert "only 0/1 or 0/255" in capsys.readouterr().err


def test_output_must_be_a_pt_file(annotations, tmp_path, capsys):
    assert main(["train", "--annotations", str(annotations), "--output", str(tmp_path / "m.onnx"), *TINY]) == 1
    assert "--output must end in .pt" in capsys.readouterr().err


def _command(annotations: Path, output: Path, checkpoints: Path) -> list[str]:
    """6 epochs of 15 tiny steps, so a kill after the first checkpoint is well before the end."""
    entry = "import sys; from spheroseg.cli import main; sys.exit(main())"
    return [sys.executable, "-c", entry, "train", "--annotations", str(annotations), "--output", str(output),
            "--checkpoint-dir", str(checkpoints), "--epochs", "6", "--steps-per-epoch", "15", "--batch-size", "2",
            "--patch-size", "32", "--depth", "2", "--base-width", "4", "--device", "cpu"]


@pytest.mark.slow
def test_killed_training_resumes_from_the_last_checkpoint(annotations, tmp_path):
    output, checkpoints = tmp_path / "resumed.pt", tmp_path / "ckpt"
    command = _command(annotations, output, checkpoints)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + 240
    while not (checkpoints / "last.pt").exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=60)
    assert (checkpoints / "last.pt").exists() and not output.exists(), "killed before the end, after a checkpoint"
    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert second.returncode == 0, second.stderr
    assert "resuming from checkpoint" in second.stderr and "after epoch 0" not in second.stderr
    card = read_verified_card(output)
    assert card["training"]["resumed_from_epoch"] >= 1 and card["training"]["epochs_run"] == 6


def test_patch_size_shrinks_to_small_images(annotations, tmp_path):
    output = tmp_path / "small.pt"
    args = ["train", "--annotations", str(annotations), "--output", str(output), *TINY]
    args[args.index("--patch-size") + 1] = "256"
    assert main(args) == 0
    assert read_verified_card(output)["training"]["config"]["patch_size"] == 32


def test_train_combines_annotation_folders_with_synthetic_modalities(annotations, tmp_path):
    output, synthetic = tmp_path / "mixed.pt", tmp_path / "synthetic"
    assert main(["train", "--annotations", str(annotations), "--annotation-pixel-size-um", "1.0",
                 "--pixel-size-um", "2.0", "--synthetic", "4", "--synthetic-size", "64",
                 "--synthetic-modalities", "brightfield", "fluorescence", "--synthetic-dir", str(synthetic),
                 "--normalization", "robust", "--val-names", "003", "fluorescence_001", "--output", str(output),
                 *TINY]) == 0
    card = read_verified_card(output)
    assert card["input"]["pixel_size_um"] == 2.0
    assert card["input"]["normalization"] == {"kind": "robust", "low": 1.0, "high": 99.8, "block": 8,
                                              "polarity": "auto"}
    sources = card["training"]["annotations"]
    assert sources[0] == {"annotations": str(annotations), "pixel_size_um": 1.0}
    assert sources[1]["pixel_size_um"] == 2.0 and "modalities=('brightfield', 'fluorescence')" in sources[1]["annotations"]
    assert {record["source"] for record in card["training"]["files"]} == {0, 1}
    assert {"path": "images/brightfield_002.tif", "source": 1,
            "sha256": sha256_file(synthetic / "images" / "brightfield_002.tif")} in card["training"]["files"]
    assert sorted(card["training"]["train_names"])[:2] == ["000", "001"] and "brightfield_000" in card["training"][
        "train_names"]


def test_train_uses_one_folder_at_two_scales_with_patches_shared_by_source(annotations, tmp_path):
    output = tmp_path / "two-scales.pt"
    assert main(["train", "--annotations", str(annotations), str(annotations), "--annotation-pixel-size-um", "1.0",
                 "2.0", "--pixel-size-um", "2.0", "--sampling", "source", "--val-names", "000@2um", "--output",
                 str(output), *TINY]) == 0
    training = read_verified_card(output)["training"]
    assert training["config"]["sampling"] == "source" and training["val_names"] == ["000@2um"]
    assert "000" in training["train_names"] and "001@2um" in training["train_names"]
    assert [s["pixel_size_um"] for s in training["annotations"]] == [1.0, 2.0]
    assert len(training["files"]) == 24 and {r["source"] for r in training["files"]} == {0, 1}


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--annotation-pixel-size-um", "1", "2"], "one value or one per --annotations folder"),
     (["--annotation-pixel-size-um", "1"], "--pixel-size-um .* must be given"),
     (["--synthetic", "0"], "--synthetic must be >= 1"),
     (["--synthetic", "1", "--synthetic-dir", "{full}"], "--synthetic-dir must be a new or empty folder")],
    ids=["pixel-size-count", "no-training-pixel-size", "no-synthetic-pairs", "synthetic-dir-not-empty"],
)
def test_bad_source_options_fail_before_training(annotations, tmp_path, capsys, extra, message):
    extra = [str(annotations) if value == "{full}" else value for value in extra]
    assert main(["train", "--annotations", str(annotations), "--output", str(tmp_path / "bad.pt"), *extra,
                 *TINY]) == 1
    assert re.search(message, capsys.readouterr().err)
    assert not list(tmp_path.glob("bad*"))


def test_cli_choices_match_the_package():
    from spheroseg.cli import train
    from spheroseg.normalization import NORMALIZATION_KINDS
    from spheroseg.synthetic import SYNTHETIC_KINDS

    assert train.SYNTHETIC_KINDS == SYNTHETIC_KINDS and train.NORMALIZATION_KINDS == NORMALIZATION_KINDS
