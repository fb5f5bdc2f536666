"""Training recipes: the one home of their settings; bad names and a finetune without a model are refused."""

from __future__ import annotations

import pytest

from spheroseg.cli import main
from spheroseg.training.loop import TrainConfig
from spheroseg.training.pipeline import TrainingJob
from spheroseg.training.recipes import RECIPES, recipe_settings


def test_every_recipe_setting_is_a_train_option():
    fields = set(TrainConfig.__dataclass_fields__) | {"level"} | set(TrainingJob.__dataclass_fields__)
    assert all(set(settings) <= fields for settings in RECIPES.values())


def test_finetune_is_short_and_stops_early():
    settings = recipe_settings("finetune", init="models/default.pt")
    assert settings["epochs"] * settings["steps_per_epoch"] < 40 * 50 and settings["patience"] > 0


@pytest.mark.parametrize(("name", "init", "match"), [
    ("fast", None, r"recipe must be one of \['custom', 'finetune'\], got 'fast' \(config key 'training.recipe'\)"),
    ("finetune", None, r"recipe 'finetune' must start from a model.*training\.init"),
], ids=["unknown", "finetune-without-init"])
def test_bad_recipe_is_refused(name, init, match):
    with pytest.raises(ValueError, match=match):
        recipe_settings(name, init=init)


def test_cli_refuses_finetune_without_init_before_training(tmp_path, capsys):
    assert main(["train", "--recipe", "finetune", "--annotations", str(tmp_path), "--output",
                 str(tmp_path / "m.pt")]) == 1
    assert "must start from a model" in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()
