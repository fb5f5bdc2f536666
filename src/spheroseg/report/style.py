"""Colours shared by every figure: an object has the same colour in the plots and on its
contour in the overlays, and QC flags are marked in the same colours everywhere."""

from __future__ import annotations

from collections.abc import Sequence

# Okabe-Ito colours without black and yellow: distinct for colour-blind readers, bright
# enough over a black halo on grey images, dark enough as plot lines on white.
OBJECT_COLOURS = ("#56B4E9", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#0072B2")
# QC-flagged frames: red text and frames in overlays, yellow shading in plots.
FLAG_TEXT_COLOUR = "#ff5a36"
FLAG_COLOUR = "#f2d16b"
# Shed fragments (not main bodies): thin, unlabelled contours and their summary lines.
FRAGMENT_COLOUR = "#f0f0f0"
FRAGMENT_LINE_COLOUR = "#555555"


def object_colour(object_id: int) -> str:
    """Colour of an object id, the same in overlays and plots.

    Examples
    --------
    >>> object_colour(1), object_colour(7)
    ('#56B4E9', '#56B4E9')
    """
    return OBJECT_COLOURS[(int(object_id) - 1) % len(OBJECT_COLOURS)]


def object_colours(object_ids: Sequence[int]) -> dict[int, str]:
    """Colour per object id, the same as its contour in the overlays.

    Examples
    --------
    >>> object_colours([2, 1])
    {1: '#56B4E9', 2: '#E69F00'}
    """
    return {object_id: object_colour(object_id) for object_id in sorted(set(int(i) for i in object_ids))}
