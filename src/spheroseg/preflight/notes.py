"""Console notes said once before any job: what can run but may not be what was meant."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from spheroseg.ingest import PhysicalSizes
from spheroseg.preflight.plan import ChannelSpec, PositionPlan, channel_index
from spheroseg.preflight.record import RECORD_NAME


def unit_warnings(plans: Mapping[str, PositionPlan], *,
                  overrides: PhysicalSizes = PhysicalSizes()) -> list[str]:
    """Console lines about positions without pixel size or frame interval, and about files
    whose own value an ``ingest`` override replaces (empty if none)."""
    lines = _override_warnings(plans, overrides)
    if overrides.pixel_size_um is None:
        missing = [plan.name for plan in plans.values() if plan.pixel_size_um is None]
        if missing:
            lines.append(
                f"{len(missing)} of {len(plans)} position(s) have no pixel size in their "
                f"metadata: {names_text(missing)}. Their objects are filtered by "
                f"segment.min_area_px instead of segment.min_area_um2 and measured in pixels, "
                f"and the model sees them at their own scale (predict.rescale needs a pixel "
                f"size); set ingest.pixel_size_um (micrometres) to measure in micrometres.")
    if overrides.time_interval_s is None:
        series = [plan for plan in plans.values() if plan.frames > 1]
        missing = [plan.name for plan in series if plan.time_interval_s is None]
        if missing:
            lines.append(
                f"{len(missing)} of {len(series)} time series have no frame interval in their "
                f"metadata: {names_text(missing)}. Their time is in frames (column time_frame); "
                f"set ingest.time_interval_s (seconds) for time in seconds.")
    return lines


def _override_warnings(plans: Mapping[str, PositionPlan], overrides: PhysicalSizes) -> list[str]:
    """Lines naming the positions whose metadata value an override replaces by another."""
    lines = []
    for key, unit, value, field, series_only in (
            ("ingest.pixel_size_um", "um", overrides.pixel_size_um, "pixel_size_um", False),
            ("ingest.time_interval_s", "s", overrides.time_interval_s, "time_interval_s", True)):
        if value is None:
            continue
        replaced = [f"{plan.name!r} ({getattr(plan, field):g} {unit})" for plan in plans.values()
                    if getattr(plan, field) is not None and (plan.frames > 1 or not series_only)
                    and not math.isclose(getattr(plan, field), value, rel_tol=1e-6)]
        if replaced:
            lines.append(
                f"{key} ({value:g} {unit}) replaces the value in the metadata of "
                f"{len(replaced)} position(s): {items_text(replaced)}. The key holds one value "
                f"for every position; remove it to keep each file's own.")
    return lines


def folder_warnings(plans: Mapping[str, PositionPlan], *, results: str | os.PathLike[str],
                    pattern: str | None = None, channel: ChannelSpec = 0) -> list[str]:
    """Console lines about a folder that runs but may not be what was meant (empty if none):
    positions whose frames are z-slices (max-projected into one frame), positions named like
    annotation masks, z-stacks over time (max-projected per timepoint), positions with
    several channels (only the one ``ingest.channel`` (`channel`) chooses is segmented), positions of an earlier run (``results/experiment.json``) whose files
    are gone, and an ``ingest.pattern`` without ``{timepoint}`` that makes every file a
    one-frame position."""
    lines = []
    if (pattern is not None and "{timepoint}" not in pattern and len(plans) > 1
            and all(plan.frames == 1 for plan in plans.values())):
        lines.append(
            f"ingest.pattern {pattern!r} has no {{timepoint}}, so each of the {len(plans)} files is "
            f"a position of one frame ({names_text(list(plans), shown=3)}); if the files are the "
            f"timepoints of fewer positions, put {{timepoint}} in the pattern.")
    slices = [plan.name for plan in plans.values()
              if len(plan.shape) == 5 and plan.shape[2] > 1 and plan.frames == 1]
    if slices:
        lines.append(
            f"{len(slices)} position(s) have z-slices and one timepoint: {names_text(slices)}. Each "
            f"is max-projected into one frame; if the slices are timepoints (ImageJ saves a "
            f"plain stack as slices), set ingest.axes, e.g. 'tyx'.")
    stacks = [f"{plan.name!r} ({plan.shape[2]} planes)" for plan in plans.values()
              if len(plan.shape) == 5 and plan.shape[2] > 1 and plan.frames > 1]
    if stacks:
        lines.append(
            f"{len(stacks)} position(s) are z-stacks over time: {items_text(stacks)}. Their "
            f"images keep every plane, but predict, segment and measure use each timepoint's "
            f"maximum projection over z.")
    several = [_channels_item(plan, channel_index(plan, channel))
               for plan in plans.values() if plan.channels > 1]
    if several:
        chosen = (f"channel {channel} (counting from 0)" if isinstance(channel, int) else
                  f"the channel named {channel!r}" if isinstance(channel, str) else
                  f"the channel named (first found of) {list(channel)!r}")
        lines.append(
            f"{len(several)} position(s) have several channels: {items_text(several)}. Only "
            f"{chosen} is segmented and measured; ingest.channel chooses it, by number or name.")
    masks = [plan.name for plan in plans.values() if plan.name.lower().endswith("_mask")]
    if masks:
        lines.append(
            f"{len(masks)} position(s) are named like annotation masks: {names_text(masks)}. They "
            f"are segmented and measured as images; annotation pairs belong in "
            f"training.annotations, not in the experiment folder.")
    gone = sorted(set(_recorded_positions(results)) - {plan.name for plan in plans.values()})
    if gone:
        lines.append(
            f"{len(gone)} position(s) of an earlier run are no longer in the experiment folder: "
            f"{names_text(gone)}. Their results stay in {results} but are left out of the "
            f"experiment's tables and report.")
    return lines


def _channels_item(plan: PositionPlan, channel: int) -> str:
    """A position with several channels for the console: its name and channel count, and,
    where the file names them, each channel's number and name with the segmented one marked.

    Examples
    --------
    >>> _channels_item(PositionPlan("A", ("A.czi",), 0, (3, 2, 8, 8), None, None, ("BF", "GFP")), 0)
    "'A' (2: 0 'BF' segmented, 1 'GFP')"
    """
    if not plan.channel_names:
        return f"{plan.name!r} ({plan.channels})"
    named = [f"{number} {name!r}{' segmented' if number == channel else ''}"
             for number, name in enumerate(plan.channel_names)]
    return f"{plan.name!r} ({plan.channels}: {', '.join(named)})"


def _recorded_positions(results: str | os.PathLike[str]) -> list[str]:
    """Position names that ``results/experiment.json`` lists (none if it is absent or unreadable)."""
    try:
        document = json.loads((Path(results) / RECORD_NAME).read_text(encoding="utf-8"))
        return [str(name) for name in document["positions"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def scale_warnings(plans: Mapping[str, PositionPlan], *, model_pixel_size_um: float | None,
                   overrides: PhysicalSizes = PhysicalSizes(), smallest_side: int = 64,
                   largest_factor: float = 8.0) -> list[str]:
    """Console lines about positions that predict would resample to the model's pixel size
    by more than `largest_factor` either way, or to frames with a side below `smallest_side`
    pixels: most often a wrong ``ingest.pixel_size_um`` (empty if none)."""
    from spheroseg.inference.rescale import choose_rescale

    if model_pixel_size_um is None:
        return []
    odd = []
    for plan in plans.values():
        pixel = overrides.pixel_size_um or plan.pixel_size_um
        grid = choose_rescale(plan.shape[-2:], image_pixel_size_um=pixel, model_pixel_size_um=model_pixel_size_um)
        if not grid.active:  # predicted as it is: pixel size unknown or within the tolerance
            continue
        factor, sides = pixel / model_pixel_size_um, grid.model_shape
        if min(sides) < smallest_side or not 1 / largest_factor <= factor <= largest_factor:
            odd.append(f"{plan.name!r} ({plan.shape[-2]} x {plan.shape[-1]} px at {pixel:g} um/px "
                       f"-> {sides[0]} x {sides[1]} px)")
    if not odd:
        return []
    return [f"{len(odd)} position(s) would be resampled to the model's {model_pixel_size_um:g} um/px by "
            f"a large factor or to very small frames: {', '.join(odd[:4])}{' and more' if len(odd) > 4 else ''}. Check "
            f"ingest.pixel_size_um (or the files' pixel size); predict.rescale: off predicts at the "
            f"image's own scale."]


def names_text(names: Sequence[str], *, shown: int = 8) -> str:
    """Up to `shown` names, quoted, then how many more."""
    return items_text([repr(name) for name in names], shown=shown)


def items_text(items: Sequence[str], *, shown: int = 8) -> str:
    """Up to `shown` items as they are, comma-separated, then how many more."""
    text = ", ".join(items[:shown])
    return text + (f" and {len(items) - shown} more" if len(items) > shown else "")
