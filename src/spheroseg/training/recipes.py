"""Training recipes: named sets of optimisation settings, the single home of their values.

``custom`` trains exactly with the settings given (the :class:`~spheroseg.training.loop.TrainConfig`
defaults for the rest). ``finetune`` is the human-in-the-loop recipe: it starts from an
exported model (``--init``, in the workflow the current model) and takes few epochs at a
quarter of the from-scratch learning rate (the start is already good: a large rate first
undoes it), 20 steps each (so that each validation, a whole image, weighs little), with mild
intensity augmentation (corrected masks follow the image's own brightness) and early
stopping after 3 epochs without a gain in validation IoU, so that
a handful of corrected frames improves the model in minutes on a CPU
(``benchmarks/human_in_the_loop_results.md``). With fewer than ``val_min_pairs`` (5)
corrected pairs, none is held out for validation: a whole frame would be a quarter to a half of
the data (with 2 pairs, one would validate and one train), so every pair trains, for the whole
schedule, with no early stopping, and the model is the last epoch's. The batch-norm layers
keep the init model's statistics (``frozen_norm``; their scale and shift still train):
statistics re-estimated from batches of 4 patches of a few frames are noisy, and with them
the held-out IoU of the last epoch swung by more than 0.01 with the schedule length. The
normalisation window is the time series' (``normalization_scope: series``): corrected frames
that ``propose`` wrote carry their position's window, and predict computes it over all frames,
so one raw intensity is one input value across a time-lapse
(``benchmarks/loop_normalization_results.md``). A setting given explicitly wins over the recipe's.
"""

from __future__ import annotations

from typing import Any

#: Recipe name -> TrainConfig fields, TrainingJob fields (``val_min_pairs``) and ``level``
#: (the intensity augmentation) it sets.
RECIPES: dict[str, dict[str, Any]] = {
    "custom": {},
    "finetune": {"epochs": 8, "steps_per_epoch": 20, "batch_size": 4, "learning_rate": 5e-4,
                 "patience": 3, "level": "mild", "val_min_pairs": 5, "frozen_norm": True,
                 "normalization_scope": "series"},
}
#: Recipes that need a model to start from.
NEEDS_INIT = ("finetune",)


def recipe_settings(recipe: str = "custom", *, init: object = None) -> dict[str, Any]:
    """The settings of `recipe` (a name of :data:`RECIPES`).

    Raises
    ------
    ValueError
        If `recipe` is not a recipe, or it fine-tunes and `init` is None.

    Examples
    --------
    >>> recipe_settings("finetune", init="models/default.pt")["patience"]
    3
    """
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {sorted(RECIPES)}, got {recipe!r} (config key 'training.recipe')")
    if recipe in NEEDS_INIT and init is None:
        raise ValueError(f"recipe {recipe!r} must start from a model: give --init (config key 'training.init', "
                         f"or the workflow's 'model'), got none")
    return dict(RECIPES[recipe])
