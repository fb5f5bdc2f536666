"""Metric plots, contour montage and GIF: valid images of the expected size, readable labels,
visible contour colours, determinism, and every error path."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from spheroseg import ngff
from spheroseg.atomic import atomic_path
from spheroseg.report import html, overlay, plots, qc, style, tables
from spheroseg.report.build import POSITION_FILES, experiment_figure, position_report

SHAPE = (40, 48)


def _square(x0, y0, size):
    return [[x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size], [x0, y0]]


@pytest.fixture()
def position(tmp_path):
    """A 3-frame position: image, contours, metrics and a QC table flagging frame 2."""
    frames = np.full((3, *SHAPE), 100, np.uint16)
    for t in range(3):
        frames[t, 10:20 + 2 * t, 12:22 + 2 * t] = 1000
    with atomic_path(tmp_path / "image.ome.zarr", directory=True) as tmp:
        ngff.create_image(tmp, shape=(3, 1, *SHAPE), dtype="uint16", axes="tcyx",
                          pixel_size_um=2.0, time_interval_s=1800.0)[:, 0] = frames
    features = [{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [_square(12, 10, 10 + 2 * t)]},
                 "properties": {"timepoint": t, "object_id": 1}} for t in range(3)]
    features.append({"type": "Feature", "properties": {"timepoint": 2, "object_id": 2},
                     "geometry": {"type": "MultiPolygon", "coordinates": [[_square(30, 30, 4)], [_square(40, 2, 3)]]}})
    (tmp_path / "contours.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    metrics = pd.DataFrame({
        "experiment": "e", "position": "p0", "timepoint": [0, 1, 2, 2], "time_s": [0.0, 1800.0, 3600.0, 3600.0],
        "object_id": [1, 1, 1, 2], "area_um2": [400.0, 576.0, 784.0, 64.0], "perimeter_um": [80.0, 96.0, 112.0, 32.0],
        "circularity": [0.785] * 4, "aspect_ratio": [1.0] * 4, "touches_border": ["false", "false", "false", "true"],
        "is_main_body": "true"})  # declared: by its area alone (64 beside 576) object 2 is a fragment
    metrics.to_csv(tmp_path / "metrics.csv", index=False)
    table = qc.position_qc(metrics, [0.0, 0.0, 0.0], experiment="e", position="p0", area_jump_fraction=0.2,
                           uncertain_fraction=0.05, time_interval_s=1800.0)
    qc.write_qc(table, tmp_path / "qc.csv")
    return tmp_path


def _report(folder, out, **options):
    return position_report(metrics_path=folder / "metrics.csv", qc_path=folder / "qc.csv",
                           image_path=folder / "image.ome.zarr", contours_path=folder / "contours.geojson",
                           output_dir=out, title="e / p0", **options)


def test_position_report_files_are_valid_images(position):
    written = _report(position, position / "report", gif_size=96)
    assert [p.name for p in written] == list(POSITION_FILES)
    with Image.open(position / "report" / "metrics_over_time.png") as image:
        assert image.format == "PNG" and image.size == (1200, 900)
    with Image.open(position / "report" / "montage.png") as image:
        assert image.format == "PNG" and image.size[0] == 3 * 280  # 3 frames -> 3 columns
    with Image.open(position / "report" / "overlay.gif") as image:
        # cropped around all contours (x 12..43, y 2..34) with a 25 % margin: 44 x 40 pixels
        assert image.format == "GIF" and image.n_frames == 3 and image.size == (96, 87)
        assert image.info["loop"] == 0 and image.info["duration"] == 400
    root = ET.parse(position / "report" / "metrics_over_time.svg").getroot()
    assert root.tag.endswith("svg")
    page = (position / "report" / "overlay.html").read_text()
    assert page.count("data:image/gif;base64,") == 1 and "3 of 3 frames" in page


def test_position_report_with_bad_contours_writes_nothing(position):
    (position / "contours.geojson").write_text('{"type": "FeatureCollection", "features": [')  # cut short
    with pytest.raises(ValueError, match=r"contours must be valid GeoJSON.*contours\.geojson"):
        _report(position, position / "report")
    assert not (position / "report").exists() or not any((position / "report").iterdir())


def test_position_report_is_deterministic_and_limits_frames(position):
    for name in ("a", "b"):
        _report(position, position / name, montage_frames=2, gif_frames=2, gif_size=64)
    for name in POSITION_FILES:
        assert (position / "a" / name).read_bytes() == (position / "b" / name).read_bytes(), name
    with Image.open(position / "a" / "overlay.gif") as image:
        assert image.n_frames == 2
    with Image.open(position / "a" / "montage.png") as image:
        assert image.size[0] == 2 * 280


def _rgb(colour):
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def test_gif_frame_draws_contour_in_object_colour_over_black_halo(position):
    frames = overlay.load_frames(position / "image.ome.zarr", position / "contours.geojson",
                                 timepoints=[0], max_size=64, crop=False)
    picture = overlay.render_gif_frame(frames[0], size=96, header="p0", pixel_size_um=None)
    assert picture.shape == (80, 96, 3) and picture.dtype == np.uint8
    colour = np.all(picture == _rgb(style.object_colour(1)), axis=-1)
    assert colour.sum() > 40, "the contour colour must be drawn"
    rows, cols = np.nonzero(colour)
    assert 18 <= rows.min() and rows.max() <= 42 and 22 <= cols.min() and cols.max() <= 46  # square x2
    black = np.all(picture == 0, axis=-1)
    assert black[16:45, 20:49].sum() > colour.sum() / 2, "a dark halo must surround the contour"


def test_flagged_frame_gets_red_border_and_caption(position):
    flags = qc.flagged_timepoints(qc.read_qc(position / "qc.csv"))
    assert flags == {1: ["area_jump"], 2: ["appears", "area_jump"]}
    frames = overlay.load_frames(position / "image.ome.zarr", position / "contours.geojson",
                                 timepoints=[0, 2], flags=flags, max_size=64)
    assert frames[0].flags == [] and frames[1].flags == ["appears", "area_jump"]
    assert frames[1].title == "t2 · 1.0 h" and [i for i, _ in frames[1].contours] == [1, 2]
    assert len(frames[1].contours[1][1]) == 2  # MultiPolygon -> two rings
    picture = overlay.render_gif_frame(frames[1], size=96, header="p0", pixel_size_um=2.0)
    assert tuple(picture[40, 0]) == _rgb(style.FLAG_TEXT_COLOUR)


def test_crop_is_one_window_for_all_frames_with_shifted_contours(position):
    frames = overlay.load_frames(position / "image.ome.zarr", position / "contours.geojson",
                                 timepoints=[0, 2], max_size=64)
    assert [f.shape for f in frames] == [(40, 44), (40, 44)] and frames[0].image.shape == (40, 44)
    ring = frames[0].contours[0][1][0]
    assert ring.min(axis=0).tolist() == [8.0, 10.0]  # x - 4, y - 0
    full = overlay.load_frames(position / "image.ome.zarr", position / "contours.geojson",
                               timepoints=[0], max_size=64, crop=False)
    assert full[0].shape == SHAPE and full[0].contours[0][1][0].min(axis=0).tolist() == [12.0, 10.0]


def test_crop_window_without_contours_is_whole_frame():
    assert overlay.crop_window({}, shape=(5, 7)) == (slice(0, 5), slice(0, 7))


def test_frames_share_one_grey_scale(position):
    frames = overlay.load_frames(position / "image.ome.zarr", position / "contours.geojson",
                                 timepoints=[0, 2], max_size=64)
    assert frames[0].image.dtype == np.uint8
    assert frames[0].image[0, 0] == frames[1].image[0, 0] == 0
    assert frames[0].image[12, 14] == frames[1].image[12, 14] == 255


def test_plot_labels_use_physical_units_and_hours(position):
    metrics = tables.read_metrics(position / "metrics.csv")
    figure = plots.plot_position(metrics, qc.read_qc(position / "qc.csv"), title="e / p0")
    labels = [axes.get_ylabel() for axes in figure.axes]
    assert labels == ["Area (µm²)", "Perimeter (µm)", "Circularity (4πA/P², 1 = disk)",
                      "Aspect ratio (major / minor axis)"]
    assert [axes.get_xlabel() for axes in figure.axes[2:]] == ["Time (h)", "Time (h)"]
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert legend == ["object 1", "object 2", "QC-flagged frame", "flagged object", "touches border"]
    assert "t1 (0.5 h) area jump" in figure._supxlabel.get_text()
    plots.save_figure(figure, [])


def test_plot_without_physical_units_says_so():
    metrics = pd.DataFrame({"position": "p", "timepoint": [0, 1], "time_frame": [0, 1], "object_id": 1,
                            "area_px2": [1.0, 2.0], "perimeter_px": [1.0, 2.0], "circularity": 1.0,
                            "aspect_ratio": 1.0, "touches_border": "false"})
    figure = plots.plot_position(metrics, None, title="t")
    assert figure.axes[0].get_ylabel() == "Area (px²; pixel size unknown)"
    assert figure.axes[2].get_xlabel() == "Frame (frame interval unknown)"
    plots.save_figure(figure, [])


def test_experiment_figure_groups_by_condition(position, tmp_path):
    (tmp_path / "samples.tsv").write_text("position\tcondition\np0\tcontrol\n")
    experiment_figure(position / "metrics.csv", [tmp_path / "c.png", tmp_path / "c.svg"], title="e",
                      samples_path=tmp_path / "samples.tsv", qc_path=position / "qc.csv")
    with Image.open(tmp_path / "c.png") as image:
        assert image.size == (1200, 900)
    metrics = tables.read_metrics(position / "metrics.csv").assign(condition="control")
    figure = plots.plot_experiment(metrics, qc.read_qc(position / "qc.csv"), title="e")
    legend = figure.legends[0]
    assert legend.get_title().get_text() == "condition (thick: mean)"
    assert [t.get_text() for t in legend.get_texts()] == ["control (1 pos., 2 obj.)", "single object",
                                                         "QC flag (qc.csv)"]
    plots.save_figure(figure, [])


def test_save_figure_rejects_unknown_format(tmp_path):
    figure = plots.plot_experiment(pd.DataFrame({"position": ["p"], "timepoint": [0], "object_id": [1],
                                                 "area_px2": [1.0], "perimeter_px": [1.0],
                                                 "circularity": [1.0], "aspect_ratio": [1.0]}), title="e")
    with pytest.raises(ValueError, match=r"must end in .png, .svg or .pdf, got '.*x.jpg'"):
        plots.save_figure(figure, [tmp_path / "x.jpg"])
    assert not (tmp_path / "x.jpg").exists()


@pytest.mark.parametrize(("text", "match"), [
    (None, "must be an existing GeoJSON file"),
    ("{not json", "must be valid GeoJSON"),
    ("[1, 2]", "must be a GeoJSON FeatureCollection"),
    ('{"features": [{"properties": {"timepoint": 0}}]}', "'timepoint' and 'object_id'.*feature 0"),
], ids=["missing", "not-json", "not-collection", "no-object-id"])
def test_read_contours_errors(tmp_path, text, match):
    path = tmp_path / "contours.geojson"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ValueError, match=match):
        overlay.read_contours(path)


@pytest.mark.parametrize(("call", "match"), [
    (lambda: overlay.choose_frames(0, max_frames=3), "n_frames and max_frames must be >= 1"),
    (lambda: overlay.render_montage([], title="t", pixel_size_um=None), "frames must be non-empty"),
    (lambda: overlay.write_gif([], "x.gif"), "images must be non-empty"),
    (lambda: tables.metric_column(["area"], "perimeter"), "perimeter_um or perimeter_px"),
    (lambda: html.gif_page("missing.gif", title="t"), "GIF must be an existing file"),
], ids=["choose-frames", "montage-empty", "gif-empty", "metric-column", "gif-page"])
def test_figure_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(("text", "match"), [
    (None, "must be an existing file"),
    ("", "empty file"),
    ("position,timepoint\np,0\n", "must have the columns"),
    (b"\xe0\xff\x00 not text", r"must be UTF-8 text, got bytes that are not .*metrics\.csv"),
], ids=["missing", "empty", "no-object-id", "binary"])
def test_read_metrics_errors(tmp_path, text, match):
    path = tmp_path / "metrics.csv"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    with pytest.raises(ValueError, match=match):
        tables.read_metrics(path)


def test_pages_escape_and_embed():
    table = pd.DataFrame({"position": ["<p>"], "timepoint": [1], "flag": ["area_jump"]})
    page = html.qc_page(table, title="QC & more")
    assert "&lt;p&gt;" in page and "<title>QC &amp; more</title>" in page
    assert "No frame or object was flagged" in html.qc_page(table.iloc[:0], title="QC")
    params = html.parameters_page({"a": {"b": 1}}, {"format": "x", "sha256": "abc"}, title="Run",
                                  model_path="m.pt")
    assert "Model card of m.pt" in params and "&quot;sha256&quot;: &quot;abc&quot;" in params


@pytest.mark.parametrize(("n_frames", "max_frames", "flagged", "expected"), [
    (10, 4, (), [0, 3, 6, 9]),
    (10, 1, (), [0]),
    (120, 16, [61], sorted({61, *(round(i * 119 / 14) for i in range(15))})),
    (100, 4, [1, 2, 3, 4, 5], [0, 1, 5, 99]),
    (5, 3, [99, -1], [0, 2, 4]),
], ids=["even", "one", "flagged-kept", "flagged-capped-at-half", "out-of-range-ignored"])
def test_choose_frames_keeps_flagged_frames(n_frames, max_frames, flagged, expected):
    chosen = overlay.choose_frames(n_frames, max_frames=max_frames, flagged=flagged)
    assert chosen == expected and len(chosen) <= max_frames


def test_experiment_groups_follow_sample_sheet_order():
    metrics = pd.DataFrame({"position": ["a", "b", "c"], "timepoint": 0, "object_id": 1, "area_px2": 1.0,
                            "perimeter_px": 1.0, "circularity": 1.0, "aspect_ratio": 1.0,
                            "condition": pd.Categorical(["z-ctrl", "a-drug", "z-ctrl"],
                                                        categories=["z-ctrl", "a-drug", "unused"])})
    figure = plots.plot_experiment(metrics, title="e")
    assert [t.get_text() for t in figure.legends[0].get_texts()][:2] == ["z-ctrl (2 pos., 2 obj.)",
                                                                        "a-drug (1 pos., 1 obj.)"]
    plots.save_figure(figure, [])
    figure = plots.plot_experiment(metrics.astype({"condition": str}), title="e")
    assert figure.legends[0].get_texts()[0].get_text().startswith("a-drug")
    plots.save_figure(figure, [])
