"""Realistic synthetic time-lapse content for the speed benchmarks (not zeros, not white noise).

Growing, elongating gastruloid-like bodies (`spheroseg.synthetic.Ellipse`) with textured
interiors and shed cells, blurred, under uneven illumination, with Poisson (shot) and read
noise drawn afresh for every frame, as `spheroseg.synthetic.render_frame` draws them but
rendered only inside each body's bounding box so that 2048 x 2048 frames take about a second.
The noiseless signal is drawn at `keyframes` timepoints and each frame uses the nearest one,
so the bodies grow in steps while every frame's noise is new (what compression sees).

Imported by the benchmark scripts (``from realistic import ...`` with ``benchmarks/`` on the
path); not part of the package.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from scipy import ndimage

from spheroseg.synthetic import Body, Ellipse

SUPERSAMPLING = 2


def field_bodies(size: int, *, count: int = 5, seed: int = 0) -> list[Body]:
    """`count` bodies spread over a square field of side `size`, growing about 40 % overall."""
    rng = np.random.default_rng(seed)
    columns = math.ceil(math.sqrt(count))
    cell = size / columns
    bodies = []
    for index in range(count):
        row, column = divmod(index, columns)
        radius = float(rng.uniform(0.16, 0.24)) * cell
        bodies.append(Body(
            start=Ellipse(center_y=(row + 0.5) * cell + float(rng.uniform(-0.1, 0.1)) * cell,
                          center_x=(column + 0.5) * cell + float(rng.uniform(-0.1, 0.1)) * cell,
                          semi_major=radius * 1.1, semi_minor=radius,
                          angle=float(rng.uniform(0, math.pi))),
            growth_per_frame=0.02, elongation_per_frame=0.02, drift_y=0.5, drift_x=-0.5,
            rotation_per_frame=0.01))
    return bodies


def _coverage_in_box(ellipse: Ellipse, signal: np.ndarray, value: np.ndarray | float) -> None:
    """Paint ``max(signal, coverage * value)`` inside the ellipse's bounding box (in place)."""
    reach = ellipse.semi_major + 2
    y0, x0 = (max(0, int(c - reach)) for c in (ellipse.center_y, ellipse.center_x))
    y1 = min(signal.shape[0], int(ellipse.center_y + reach) + 1)
    x1 = min(signal.shape[1], int(ellipse.center_x + reach) + 1)
    if y1 <= y0 or x1 <= x0:
        return
    offsets = (np.arange(SUPERSAMPLING) + 0.5) / SUPERSAMPLING - 0.5
    yy = np.arange(y0, y1)[:, None, None, None] + offsets[None, None, :, None]
    xx = np.arange(x0, x1)[None, :, None, None] + offsets[None, None, None, :]
    cover = (ellipse.normalized_radius(yy, xx) <= 1.0).mean(axis=(2, 3)).astype(np.float32)
    part = value[y0:y1, x0:x1] if isinstance(value, np.ndarray) else value
    np.maximum(signal[y0:y1, x0:x1], cover * part, out=signal[y0:y1, x0:x1])


def expected_counts(size: int, ellipses: list[Ellipse], *, seed: int) -> np.ndarray:
    """Noiseless photon counts of one frame, float32 (size, size)."""
    rng = np.random.default_rng(seed)
    texture = ndimage.gaussian_filter(rng.standard_normal((size, size)).astype(np.float32), 2.0)
    texture = 0.75 + 0.25 * (texture - texture.min()) / max(float(np.ptp(texture)), 1e-6)
    signal = np.zeros((size, size), np.float32)
    for ellipse in ellipses:
        _coverage_in_box(ellipse, signal, texture)
        for _ in range(12):  # shed cells around the body
            theta, reach = float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(1.15, 1.8))
            radius = float(rng.uniform(2.0, 5.0))
            cell = Ellipse(ellipse.center_y + reach * ellipse.semi_major * math.sin(theta),
                           ellipse.center_x + reach * ellipse.semi_major * math.cos(theta),
                           radius, radius, 0.0)
            _coverage_in_box(cell, signal, float(rng.uniform(0.4, 0.8)))
    signal = ndimage.gaussian_filter(signal, 1.0)
    yy, xx = np.mgrid[:size, :size].astype(np.float32) / size - 0.5
    illumination = 1.0 + 0.25 * yy - 0.2 * xx
    return (150.0 + 1800.0 * signal) * illumination


def realistic_frames(frames: int, size: int, *, seed: int = 0, keyframes: int = 8,
                     bodies: int = 5) -> Iterator[np.ndarray]:
    """Yield `frames` uint16 frames of shape (size, size): bodies, Poisson and read noise."""
    field = field_bodies(size, count=bodies, seed=seed)
    keyframes = max(1, min(keyframes, frames))
    rng = np.random.default_rng(seed + 1)
    current, expected = -1, np.zeros(0)
    for t in range(frames):
        key = t * keyframes // frames
        if key != current:
            moment = _body_time(t, frames, keyframes)
            expected = expected_counts(size, [body.at(moment) for body in field], seed=seed + key)
            current = key
        counts = rng.poisson(expected).astype(np.float32) + rng.normal(0.0, 20.0, expected.shape)
        yield np.clip(np.rint(counts), 0, 65535).astype(np.uint16)


def _body_time(t: int, frames: int, keyframes: int) -> int:
    """The bodies' age (in their own growth steps) shown at frame `t`: 0 to about 25."""
    key = t * keyframes // frames
    return round(key * frames / keyframes) // 8


def body_probabilities(size: int, t: int, frames: int, *, seed: int = 0, keyframes: int = 8,
                       bodies: int = 5) -> np.ndarray:
    """Foreground probability of the bodies at frame `t` (sigmoid edges, 1.5 px), float32."""
    probabilities = np.zeros((size, size), np.float32)
    for body in field_bodies(size, count=bodies, seed=seed):
        ellipse = body.at(_body_time(t, frames, max(1, min(keyframes, frames))))
        reach = ellipse.semi_major + 12
        y0, x0 = (max(0, int(c - reach)) for c in (ellipse.center_y, ellipse.center_x))
        y1 = min(size, int(ellipse.center_y + reach) + 1)
        x1 = min(size, int(ellipse.center_x + reach) + 1)
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        distance = (1.0 - ellipse.normalized_radius(yy, xx)) * ellipse.semi_minor / 1.5
        inside = 1.0 / (1.0 + np.exp(-np.clip(distance, -30, 30)))
        np.maximum(probabilities[y0:y1, x0:x1], inside, out=probabilities[y0:y1, x0:x1])
    return probabilities
