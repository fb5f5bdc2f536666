"""Config keys against the data: each check raises ``ValueError`` with one line naming the
file and the config key."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from spheroseg.preflight.notes import names_text
from spheroseg.preflight.plan import ChannelSpec, PositionPlan, channel_index


def check_channel(plans: Mapping[str, PositionPlan], channel: ChannelSpec) -> dict[str, int]:
    """Position folder -> the channel number ``ingest.channel`` chooses in it
    (:func:`channel_index`); raises for the first position where it chooses none.

    Examples
    --------
    >>> plan = PositionPlan("A", ("A.tif",), 0, (2, 1, 8, 8), None, None)
    >>> check_channel({"A": plan}, "BF")
    {'A': 0}
    >>> check_channel({"A": plan}, 1)
    Traceback (most recent call last):
    ...
    ValueError: ingest.channel must be below 1 (the channels of position 'A'), got 1 (in A.tif)
    """
    return {folder: channel_index(plan, channel) for folder, plan in plans.items()}


def check_model(path: str | os.PathLike[str], *, key: str = "model",
                positions: Mapping[str, PositionPlan] | None = None) -> None:
    """Raise unless `path` is a TorchScript model file whose JSON card beside it is valid and
    matches it (SHA-256), and, given `positions`, whose input channels every position has.

    Reads the card and hashes the model file; torch is not imported (a loadable archive is
    recognised by its ``code/`` and ``constants.pkl`` entries).
    """
    from spheroseg.modelcard import read_verified_card

    model = Path(path)
    card_path = model.with_suffix(".json")
    if not model.is_file():
        raise ValueError(f"{key} must be an existing TorchScript model file (with its JSON "
                         f"card beside it), got {str(path)!r} (config key '{key}')")
    if not card_path.is_file():
        raise ValueError(f"{key} must have its JSON model card beside it, got no "
                         f"{card_path.name!r} (config key '{key}', in {model.parent})")
    try:
        card = read_verified_card(model)
    except ValueError as err:
        raise ValueError(f"{err} (config key '{key}')") from err
    if not _is_torchscript_archive(model):
        raise ValueError(f"{key} must be a TorchScript file (torch.jit.save), got a file that is "
                         f"not one (config key '{key}', in {model})")
    wanted = card["input"]["channels"]
    for plan in (positions or {}).values():
        if wanted not in (1, plan.channels):
            raise ValueError(
                f"input.channels must be 1 or the {plan.channels} channel(s) of position "
                f"{plan.name!r}, got {wanted} (the model does not fit the data; config key "
                f"'{key}', in {card_path})")


def _is_torchscript_archive(path: Path) -> bool:
    """Whether `path` is a zip archive laid out as ``torch.jit.save`` writes it."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    return (any("/code/" in name for name in names)
            and any(name.endswith("/constants.pkl") for name in names))


def check_annotations(folder: str | None, *, val_names: Sequence[str] = (), mask_kind: str = "auto",
                      allow_empty: bool = False) -> None:
    """Raise unless `folder` holds image/mask pairs (``training.annotations``) that training
    can read (sizes agree, masks binarise and, unless `allow_empty`, hold foreground) and
    every name of `val_names` (``training.val_names``) is one of them, with one left for
    training. Reads every pair: annotation sets are a few frames."""
    from spheroseg.training.data import find_annotation_pairs, load_pair, split_pairs

    if folder is None:
        raise ValueError("training.annotations must name a folder of image/mask pairs when "
                         "training.enabled is true, got null (config key "
                         "'training.annotations')")
    try:
        pairs = find_annotation_pairs(folder)
        for pair in pairs:
            load_pair(pair, mask_kind=mask_kind, allow_empty=allow_empty)
    except ValueError as err:
        raise ValueError(f"training.annotations: {err} (config key 'training.annotations')") from err
    if val_names:
        try:
            split_pairs(pairs, val_names=list(val_names))
        except ValueError as err:
            raise ValueError(f"training.val_names: {err} (in {folder})") from err


def check_samples(path: str | os.PathLike[str], plans: Mapping[str, PositionPlan]
                  ) -> list[str]:
    """Raise unless the sample sheet (``samples``) is readable and lists every position;
    return console lines about its positions that the experiment does not have.

    Parameters
    ----------
    path : str or PathLike
        The sample sheet (`spheroseg.report.samples.read_samples`).
    plans : mapping of str to PositionPlan
        The experiment's positions (their names are those of the metrics).

    Returns
    -------
    list of str
        One line naming the sheet's unknown positions (ignored by the report: a sheet may
        describe a whole plate), or none.

    Raises
    ------
    ValueError
        If `read_samples` refuses the sheet, or a position of the experiment is not in it.
    """
    from spheroseg.report.samples import read_samples

    listed = read_samples(path)["position"].tolist()
    names = [plan.name for plan in plans.values()]
    missing = [name for name in names if name not in listed]
    if missing:
        raise ValueError(f"every position of the experiment must be in the sample sheet, got "
                         f"{len(missing)} of {len(names)} missing: {names_text(missing)} "
                         f"(config key 'samples', in {path})")
    unknown = [name for name in listed if name not in names]
    if not unknown:
        return []
    return [f"the sample sheet lists {len(unknown)} position(s) that the experiment does not "
            f"have, ignored: {names_text(unknown)} (config key 'samples', in {path})"]


def check_snakemake_path(value: str | None, key: str) -> None:
    """Raise if a configured path has braces, which Snakemake would read as wildcards."""
    if value is not None and ("{" in value or "}" in value):
        raise ValueError(f"{key} must not contain '{{' or '}}' (Snakemake reads them as "
                         f"wildcards), got {value!r} (config key '{key}')")


def check_output_folder(value: str | None, key: str) -> None:
    """Raise if a configured output folder, or a folder above it, is a file.

    Examples
    --------
    >>> check_output_folder("results/new", "results")
    """
    if value is None:
        return
    for folder in (Path(value), *Path(value).parents):
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"{key} must be a folder (or not exist yet), got {value!r}, where "
                             f"{str(folder)!r} is a file (config key '{key}')")


_SCHEMA_EXPECTATIONS = {"minimum": ">= {}", "maximum": "<= {}", "exclusiveMinimum": "> {}",
                        "exclusiveMaximum": "< {}", "enum": "one of {}", "type": "of type {}",
                        "pattern": "text matching {!r}", "minItems": "a list of at least {} items",
                        "maxItems": "a list of at most {} items"}


def schema_error(config: Mapping[str, object], schema: Mapping[str, object]) -> str | None:
    """One line for the config's most relevant violation of the workflow schema, or None.

    Snakemake's own validation reports the same errors as a jsonschema dump of 10 to 20
    lines; this names the key, what it must be and what it got, in the house form.

    Examples
    --------
    >>> schema = {"type": "object", "additionalProperties": False, "properties": {"ingest": {
    ...     "type": "object", "additionalProperties": False,
    ...     "properties": {"channel": {"type": "integer", "minimum": 0}}}}}
    >>> schema_error({"ingest": {"channel": -1}}, schema)
    "ingest.channel must be >= 0, got -1 (config key 'ingest.channel')"
    >>> schema_error({"ingest": {"chanel": 1}}, schema)
    "ingest must have only the keys ['channel'], got unknown 'chanel' (config key 'ingest')"
    >>> schema_error({"ingest": {"channel": 2}}, schema) is None
    True
    >>> schema["properties"]["ingest"]["properties"]["smoothing"] = {"oneOf": [
    ...     {"type": "string", "enum": ["auto"]}, {"type": "number", "minimum": 0, "exclusiveMaximum": 50}]}
    >>> schema_error({"ingest": {"smoothing": "gauss"}}, schema)
    "ingest.smoothing must be one of ['auto'] or a number >= 0 and < 50, got 'gauss' (config key 'ingest.smoothing')"
    >>> schema["properties"]["ingest"]["properties"]["channel"] = {"oneOf": [{"type": "integer", "minimum": 0},
    ...     {"type": "array", "items": {"type": "string", "minLength": 1}}]}
    >>> schema_error({"ingest": {"channel": ["BF", 3]}}, schema)
    "ingest.channel must be an integer >= 0 or a list of non-empty strings, got ['BF', 3] (config key 'ingest.channel')"
    """
    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is None:
        return None
    # Of a failed alternative (oneOf), the alternatives as a whole: a list item's own error
    # would name the item, not the key.
    alternatives = next((e for e in (error, error.parent) if e is not None and e.validator in ("oneOf", "anyOf")),
                        None)
    if alternatives is not None:
        error = alternatives
    key = ".".join(str(part) for part in error.absolute_path) or "config"
    where = f" (config key '{key}')"
    if alternatives is not None:
        forms = " or ".join(_schema_form(form) for form in error.validator_value)
        return f"{key} must be {forms}, got {error.instance!r}{where}"
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(known))
        return f"{key} must have only the keys {known}, got unknown {', '.join(map(repr, unknown))}{where}"
    expectation = _SCHEMA_EXPECTATIONS.get(str(error.validator))
    if expectation is None:  # a check the table does not phrase: jsonschema's own words
        return f"{key}: {error.message}{where}"
    return f"{key} must be {expectation.format(error.validator_value)}, got {error.instance!r}{where}"


def _schema_form(schema: Mapping[str, object]) -> str:
    """One alternative of a oneOf, in words: ``one of ['auto', 'none']``, ``a number >= 0 and < 50``."""
    if "enum" in schema:
        return f"one of {schema['enum']}"
    if schema.get("type") == "array":
        return f"a list of {_schema_form(schema.get('items', {}))}s".replace("a list of a ", "a list of ")
    if schema.get("type") == "string" and schema.get("minLength"):
        return "a non-empty string"
    bounds = [_SCHEMA_EXPECTATIONS[name].format(schema[name]) for name in
              ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum") if name in schema]
    kind = str(schema.get("type", "value"))
    article = "an" if kind[0] in "aeiou" else "a"
    return " and ".join([f"{article} {kind}", *bounds]).replace(" and ", " ", 1)
