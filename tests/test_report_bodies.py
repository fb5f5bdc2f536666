"""Invasive bodies in the report: the main body apart from shed fragments, through segment,
measure, the comparison plot's data, the position plot and the overlays."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.text
import numpy as np
import pandas as pd
import pytest

from spheroseg import ngff
from spheroseg.measure import measure_store
from spheroseg.report import overlay, plots, series, tables
from spheroseg.segmentation import SegmentationOptions, segment_store
from spheroseg.synthetic import Ellipse

SHAPE = (256, 256)
FRAMES = 6
PIXEL_UM = 2.0


def coverage(ellipse: Ellipse, shape: tuple[int, int], samples: int = 4) -> np.ndarray:
    """Fraction of each pixel inside `ellipse` (supersampled), float32: a smooth probability map."""
    offsets = (np.arange(samples) + 0.5) / samples - 0.5
    yy = np.arange(shape[0])[:, None, None, None] + offsets[None, None, :, None]
    xx = np.arange(shape[1])[None, :, None, None] + offsets[None, None, None, :]
    return (ellipse.normalized_radius(yy, xx) <= 1).mean(axis=(2, 3)).astype(np.float32)


def fragments_around(body: Ellipse, count: int, rng: np.random.Generator) -> list[Ellipse]:
    """`count` small disks (radius 2.5-4 px) in a ring around `body`, apart from it and each other."""
    placed: list[Ellipse] = []
    while len(placed) < count:
        radius = rng.uniform(2.5, 4.0)
        reach, angle = rng.uniform(1.25, 2.2) * body.semi_major, rng.uniform(0, 2 * math.pi)
        y, x = body.center_y + reach * math.sin(angle), body.center_x + reach * math.cos(angle)
        inside = radius + 2 < y < SHAPE[0] - radius - 2 and radius + 2 < x < SHAPE[1] - radius - 2
        if inside and all(math.hypot(y - o.center_y, x - o.center_x) > radius + o.semi_major + 3
                          for o in placed):
            placed.append(Ellipse(y, x, radius, radius, 0.0))
    return placed


def invasive_frames(*, fragments_per_frame: list[int], seed: int, radius: tuple[float, float]
                    ) -> tuple[np.ndarray, list[int]]:
    """Probability maps (T, Y, X) of a body growing from radius[0] to radius[1] px that sheds
    the given number of fragments per frame."""
    rng = np.random.default_rng(seed)
    frames = np.zeros((FRAMES, *SHAPE), np.float32)
    for t in range(FRAMES):
        grown = radius[0] + (radius[1] - radius[0]) * t / (FRAMES - 1)
        body = Ellipse(128.0, 128.0, grown * 1.1, grown, 0.3)
        frames[t] = coverage(body, SHAPE)
        for fragment in fragments_around(body, fragments_per_frame[t], rng):
            frames[t] = np.maximum(frames[t], coverage(fragment, SHAPE))
    return frames, fragments_per_frame


def measure_position(folder: Path, frames: np.ndarray, name: str) -> Path:
    """segment -> measure of probability maps (also used as the image); the metrics CSV."""
    folder.mkdir(parents=True)
    probabilities = folder / "probabilities.ome.zarr"
    array = ngff.create_image(probabilities, shape=frames.shape, dtype=np.float32, axes="tyx",
                              pixel_size_um=PIXEL_UM, time_interval_s=3600.0)
    array[:] = frames
    segment_store(probabilities, folder / "labels.ome.zarr", SegmentationOptions(min_area_px=10))
    measure_store(folder / "labels.ome.zarr", probabilities, probabilities, folder,
                  experiment="e", position=name)
    return folder / "metrics.csv"


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    """Two positions: 'invasive' (a growing body shedding 5 to 80 fragments per frame) and
    'compact' (a body growing as fast, no fragments); their metrics and the experiment's."""
    root = tmp_path_factory.mktemp("bodies")
    invasive, _ = invasive_frames(fragments_per_frame=[5, 20, 35, 50, 65, 80], seed=1,
                                  radius=(30.0, 45.0))
    compact, _ = invasive_frames(fragments_per_frame=[0] * FRAMES, seed=2, radius=(28.0, 42.0))
    paths = [measure_position(root / "invasive", invasive, "invasive"),
             measure_position(root / "compact", compact, "compact")]
    table = pd.concat([pd.read_csv(path, dtype=str, keep_default_na=False) for path in paths])
    table.to_csv(root / "metrics.csv", index=False)
    return root


def test_metrics_mark_one_main_body_per_frame_and_every_fragment(experiment):
    metrics = tables.read_metrics(experiment / "metrics.csv")
    invasive = metrics[metrics["position"] == "invasive"]
    main = invasive[invasive["is_main_body"]]
    assert main.groupby("timepoint").size().tolist() == [1] * FRAMES
    assert main["object_id"].nunique() == 1  # one tracked body
    fragments = invasive[~invasive["is_main_body"]].groupby("timepoint").size()
    assert fragments.tolist() == [5, 20, 35, 50, 65, 80]
    header = (experiment / "invasive" / "metrics" / "t0003.csv").read_text().splitlines()[0]
    assert header.endswith(",touches_border,is_main_body")


def test_comparison_plot_data_show_the_main_body_growing(experiment):
    metrics = tables.read_metrics(experiment / "metrics.csv")
    data = series.experiment_series(metrics, "position")
    area = data[(data["group"] == "invasive") & (data["series"] == "area_um2")]
    truth = [math.pi * 1.1 * (30 + 15 * t / 5) ** 2 * PIXEL_UM ** 2 for t in range(FRAMES)]
    assert area["time"].tolist() == [float(t) for t in range(FRAMES)]
    assert np.all(np.diff(area["value"]) > 0), "the main body grows"
    assert area["value"].to_numpy() == pytest.approx(truth, rel=0.01)
    counts = data[(data["group"] == "invasive") & (data["series"] == "fragments")]["value"]
    assert counts.tolist() == [5, 20, 35, 50, 65, 80]
    compact = data[(data["group"] == "compact") & (data["series"] == "fragments")]["value"]
    assert compact.tolist() == [0] * FRAMES
    # the trap this avoids: the mean over all objects shrinks as fragments pile up
    everything = metrics[metrics["position"] == "invasive"].groupby("timepoint")["area_um2"].mean()
    assert np.all(np.diff(everything) < 0)


def _line_data(axes, colour):
    """(x, y) of the thick lines of `colour` in a panel."""
    return [(line.get_xdata(), line.get_ydata()) for line in axes.get_lines()
            if line.get_linewidth() == 2.5 and line.get_color() == colour]


def test_comparison_figure_draws_those_series(experiment, tmp_path):
    metrics = tables.read_metrics(experiment / "metrics.csv")
    figure = plots.plot_experiment(metrics, title="e")
    assert len(figure.axes) == 6  # a third row: fragment count and total area
    assert figure.axes[4].get_ylabel() == "Shed fragments (count)"
    assert figure.axes[5].get_ylabel() == "Fragments, total area (µm²)"
    data = series.experiment_series(metrics, "position")
    colour = matplotlib_colour(1)  # groups in sorted order: compact, invasive
    ((x, y),) = _line_data(figure.axes[0], colour)
    expected = data[(data["group"] == "invasive") & (data["series"] == "area_um2")]
    assert list(x) == expected["time"].tolist() and list(y) == expected["value"].tolist()
    ((_, fragments),) = _line_data(figure.axes[4], colour)
    assert list(fragments) == [5, 20, 35, 50, 65, 80]
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert legend == ["compact (1 obj.)", "invasive (1 obj.)", "single main body"]
    plots.save_figure(figure, [tmp_path / "comparison.png"])


def matplotlib_colour(index: int) -> tuple[float, float, float]:
    import matplotlib

    return matplotlib.colormaps["tab10"].colors[index]


def test_position_plot_shows_the_main_body_and_the_fragments(experiment):
    metrics = tables.read_metrics(experiment / "invasive" / "metrics.csv")
    figure = plots.plot_position(metrics, None, title="e / invasive")
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert legend[:2] == ["object 1", "shed fragments"] and "object 2" not in legend
    (count_line,) = figure.axes[4].get_lines()
    assert list(count_line.get_ydata()) == [5, 20, 35, 50, 65, 80]
    body_lines = [line for line in figure.axes[0].get_lines() if line.get_label() == "object 1"]
    assert len(body_lines) == 1 and np.all(np.diff(body_lines[0].get_ydata()) > 0)
    plots.save_figure(figure, [])


def test_montage_numbers_only_the_main_body(experiment):
    folder = experiment / "invasive"
    metrics = tables.read_metrics(folder / "metrics.csv")
    frames = overlay.load_frames(folder / "probabilities.ome.zarr", folder / "contours.geojson",
                                 timepoints=[0, 5], fragments=series.fragment_ids(metrics))
    assert [len(frame.fragments) for frame in frames] == [5, 80]
    figure = overlay.render_montage(frames, title="e / invasive", pixel_size_um=PIXEL_UM)
    for axes in figure.axes[:2]:
        numbers = [t.get_text() for t in axes.findobj(matplotlib.text.Text) if t.get_text().isdigit()]
        assert numbers == ["1"]
    plots.save_figure(figure, [])
    everything = overlay.load_frames(folder / "probabilities.ome.zarr", folder / "contours.geojson",
                                     timepoints=[5])
    figure = overlay.render_montage(everything, title="e / invasive", pixel_size_um=PIXEL_UM)
    assert sum(t.get_text().isdigit() for t in figure.axes[0].findobj(matplotlib.text.Text)) == 81
    plots.save_figure(figure, [])


def test_gif_draws_fragments_thin_and_unlabelled(experiment):
    from spheroseg.report.style import FRAGMENT_COLOUR, object_colour

    folder = experiment / "invasive"
    metrics = tables.read_metrics(folder / "metrics.csv")
    (frame,) = overlay.load_frames(folder / "probabilities.ome.zarr", folder / "contours.geojson",
                                   timepoints=[5], fragments=series.fragment_ids(metrics))
    picture = overlay.render_gif_frame(frame, size=256, header="invasive", pixel_size_um=None)
    rgb = tuple(int(FRAGMENT_COLOUR[i:i + 2], 16) for i in (1, 3, 5))
    assert np.all(picture == rgb, axis=-1).sum() > 200, "fragments are outlined"
    body = tuple(int(object_colour(1)[i:i + 2], 16) for i in (1, 3, 5))
    assert np.all(picture == body, axis=-1).sum() > 200, "the main body keeps its colour"
