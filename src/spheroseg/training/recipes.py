"""Training recipes: named sets of optimisation settings, the single home of their values.

``custom`` trains exactly with the settings given (the :class:`~spheroseg.training.loop.TrainConfig`
defaults for the rest). ``finetune`` is the human-in-the-loop recipe: it starts from an
exported model (``--init``, in the workflow the current model) and takes few, short epochs
with mild intensity augmentation (corrected masks follow the image's
own brightness) and early stopping after 3 epochs without a gain in validation IoU, so that
a handful of corrected frames improves the model in minutes on a CPU
(``benchmarks/human_in_the_loop_results.md``). A setting given explicitly wins over the
recipe's.
"""

from __future__ import annotations

from typing import Any

#: Recipe name -> TrainConfig fields (and ``level``, the intensity augmentation) it sets.
RECIPES: dict[str, dict[str, Any]] = {
    "custom": {},
    "finetune": {"epochs": 10, "steps_per_epoch": 10, "batch_size": 4, "learning_rate": 2e-3,
                 "patience": 3, "level": "mild"},
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
