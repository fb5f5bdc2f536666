"""Main bodies and fragments: which tracked objects of a position are the bodies under study.

An invasive spheroid sheds cells and clumps that pass the size filter: dozens to hundreds of
small objects per frame beside one large body. Averaging over all of them makes a growing,
invading spheroid look smaller and rounder. The main bodies of a position are its largest
track (an ``object_id`` followed over time by segment's linking) and every track of at least
:data:`MAIN_BODY_FRACTION` of its size, a track's size being its median area over the frames
it is seen in; the other tracks are fragments. The decision is per track, so an object is a
main body at every timepoint of its track or at none, and a field of several similar
gastruloids keeps them all. Pure: arrays in, flags out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

# A track of at least this fraction of the largest track's median area is a main body.
MAIN_BODY_FRACTION = 0.25


def main_body_flags(object_ids: Sequence[int], areas: Sequence[float], *,
                    fraction: float = MAIN_BODY_FRACTION) -> NDArray[np.bool_]:
    """Which rows (objects of one position at its timepoints) belong to a main body.

    Parameters
    ----------
    object_ids : sequence of int, length N
        Tracked id of each row.
    areas : sequence of float, length N
        Area of each row, any unit (missing values count as 0).
    fraction : float
        Smallest median area of a main-body track relative to the largest track's, in (0, 1].

    Returns
    -------
    ndarray of shape (N,), bool

    Raises
    ------
    ValueError
        If the lengths differ or `fraction` is outside (0, 1].

    Examples
    --------
    >>> main_body_flags([1, 2, 3, 1, 2, 4], [900.0, 20.0, 800.0, 1000.0, 30.0, 15.0]).tolist()
    [True, False, True, True, False, False]
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    ids = np.asarray(object_ids, dtype=np.int64)
    values = np.nan_to_num(np.asarray(areas, dtype=np.float64), nan=0.0)
    if ids.shape != values.shape or ids.ndim != 1:
        raise ValueError(f"object_ids and areas must be 1-D of one length, got {ids.shape} "
                         f"and {values.shape}")
    if ids.size == 0:
        return np.zeros(0, dtype=bool)
    tracks, index = np.unique(ids, return_inverse=True)
    medians = np.array([np.median(values[index == k]) for k in range(tracks.size)])
    largest = medians.max()
    return (medians >= fraction * largest)[index] if largest > 0 else np.ones(ids.size, bool)
