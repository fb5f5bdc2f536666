"""Report outputs from pipeline files: the functions behind ``spheroseg report``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from spheroseg.report import html, overlay, plots, qc, samples, series, tables

POSITION_FILES = ("metrics_over_time.png", "metrics_over_time.svg", "montage.png",
                  "overlay.gif", "overlay.html")


def position_qc_table(metrics_path: str | os.PathLike[str],
                      probabilities_path: str | os.PathLike[str], output: str | os.PathLike[str],
                      *, experiment: str, position: str, area_jump_fraction: float = 0.2,
                      uncertain_fraction: float = 0.05,
                      image_path: str | os.PathLike[str] | None = None,
                      labels_path: str | os.PathLike[str] | None = None) -> int:
    """Compute one position's QC flags and write them as CSV; return the number of flags.

    Parameters
    ----------
    metrics_path, probabilities_path : str or PathLike
        The position's ``metrics.csv`` and ``probabilities.ome.zarr``.
    output : str or PathLike
        ``qc.csv`` to write.
    experiment, position : str
        Names written into the table.
    area_jump_fraction, uncertain_fraction : float
        Limits of :func:`~spheroseg.report.qc.area_jump_flags` and
        :func:`~spheroseg.report.qc.uncertain_flags`.
    image_path : str or PathLike, optional
        The ingested ``image.ome.zarr``: its constant frames are flagged as ``blank_frame``.
    labels_path : str or PathLike, optional
        The position's label image (``image.ome.zarr/labels/segmentation``): frames whose
        every object segment's size filter removed are flagged as ``no_objects``.

    Raises
    ------
    ValueError
        If an input is unreadable or malformed, or a limit is out of range (checked first).
    """
    from spheroseg import ngff

    qc.check_limits(area_jump_fraction=area_jump_fraction, uncertain_fraction=uncertain_fraction)
    metrics = tables.read_metrics(metrics_path)
    paths = {"probabilities": probabilities_path, "image": image_path, "labels": labels_path}
    metadata = ngff.check_same_grid({name: path for name, path in paths.items() if path is not None},
                                    reference="probabilities")  # an image of another position is refused
    shares = qc.uncertain_shares(probabilities_path)
    interval = metadata["probabilities"].time_interval_s
    blank = [] if image_path is None else _blank_frames(image_path)
    emptied = [] if labels_path is None else _emptied_frames(labels_path)
    table = qc.position_qc(metrics, shares, experiment=experiment, position=position,
                           area_jump_fraction=area_jump_fraction,
                           uncertain_fraction=uncertain_fraction, time_interval_s=interval,
                           source=metrics_path, blank_frames=blank, emptied=emptied)
    qc.write_qc(table, output)
    return len(table)


def _blank_frames(image_path: str | os.PathLike[str]) -> list[int]:
    """Timepoints that ingest found constant (``spheroseg.blank_frames`` attribute)."""
    from spheroseg import ngff

    frames = ngff.read_attributes(image_path).get("spheroseg", {}).get("blank_frames", [])
    if not isinstance(frames, list) or not all(isinstance(t, int) for t in frames):
        raise ValueError(f"spheroseg.blank_frames must be a list of timepoints, got "
                         f"{frames!r} (in {image_path})")
    return frames


def _emptied_frames(labels_path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """``no_objects`` flags from what segment recorded in the labels' attributes."""
    from spheroseg import ngff
    from spheroseg.segmentation import read_segmentation_record

    record = read_segmentation_record(labels_path)
    if record is None:
        raise ValueError(f"labels must be a label image written by spheroseg segment, got no "
                         f"spheroseg.segment attributes (in {labels_path})")
    return qc.no_object_flags(record, pixel_size_um=ngff.read_metadata(labels_path).pixel_size_um)


def experiment_qc_table(inputs: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str],
                        *, page: str | os.PathLike[str] | None = None,
                        title: str = "Quality control flags") -> int:
    """Merge per-position QC tables into ``qc.csv`` (and an HTML page); return the flag count."""
    from spheroseg.atomic import write_text

    table = qc.merge_qc(inputs)
    qc.write_qc(table, output)
    if page is not None:
        write_text(page, html.qc_page(table, title=title))
    return len(table)


def position_report(*, metrics_path: str | os.PathLike[str], qc_path: str | os.PathLike[str],
                    image_path: str | os.PathLike[str], contours_path: str | os.PathLike[str],
                    output_dir: str | os.PathLike[str], title: str, channel: int = 0,
                    montage_frames: int = 16, gif_frames: int = 60, gif_size: int = 320,
                    frame_ms: int = 400) -> list[Path]:
    """Write a position's metric plots (PNG, SVG), contour montage, GIF and GIF page.

    Parameters
    ----------
    metrics_path, qc_path, image_path, contours_path : str or PathLike
        The position's ``metrics.csv``, ``qc.csv``, ``image.ome.zarr``, ``contours.geojson``.
    output_dir : str or PathLike
        Receives :data:`POSITION_FILES`.
    title : str
        Figure title, e.g. ``"demo / pos0"``.
    channel : int
        Image channel shown under the contours.
    montage_frames, gif_frames : int
        Most frames shown: QC-flagged frames first, the others evenly spaced (first and last
        included); see :func:`spheroseg.report.overlay.choose_frames`.
    gif_size : int
        Largest edge of the GIF in pixels.
    frame_ms : int
        Display time of each GIF frame.

    Returns
    -------
    list of Path
        The written files.

    Raises
    ------
    ValueError
        If an input is unreadable or malformed, or an option is out of range.
    """
    from spheroseg import ngff
    from spheroseg.atomic import write_text

    for name, value in (("montage_frames", montage_frames), ("gif_frames", gif_frames),
                        ("gif_size", gif_size), ("frame_ms", frame_ms)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    output = Path(output_dir)
    metrics = tables.read_metrics(metrics_path)
    flags_table = qc.read_qc(qc_path)
    metadata = ngff.read_metadata(image_path)
    n_frames, _ = ngff.frames_and_plane(metadata)
    flagged = qc.flagged_timepoints(flags_table)
    fragments = series.fragment_ids(metrics)
    chosen = overlay.choose_frames(n_frames, max_frames=montage_frames, flagged=list(flagged))
    # Every input (the contours too) is read before the first file is written: a bad input
    # leaves no plots behind that look like a report.
    frames = overlay.load_frames(image_path, contours_path, timepoints=chosen, flags=flagged,
                                 channel=channel, max_size=512, fragments=fragments)
    plots.save_figure(plots.plot_position(metrics, flags_table, title=title),
                      [output / "metrics_over_time.png", output / "metrics_over_time.svg"])
    plots.save_figure(overlay.render_montage(frames, title=title,
                                             pixel_size_um=metadata.pixel_size_um),
                      [output / "montage.png"], dpi=100)
    chosen = overlay.choose_frames(n_frames, max_frames=gif_frames, flagged=list(flagged))
    frames = overlay.load_frames(image_path, contours_path, timepoints=chosen, flags=flagged,
                                 channel=channel, max_size=gif_size, fragments=fragments)
    images = [overlay.render_gif_frame(frame, size=gif_size, header=title,
                                       pixel_size_um=metadata.pixel_size_um) for frame in frames]
    overlay.write_gif(images, output / "overlay.gif", frame_ms=frame_ms)
    write_text(output / "overlay.html", html.gif_page(
        output / "overlay.gif", title=f"{title}: contours over time",
        note=f"{len(images)} of {n_frames} frames, {frame_ms} ms each; QC-flagged frames "
             "have a red border and their flags in red."))
    return [output / name for name in POSITION_FILES]


def experiment_figure(metrics_path: str | os.PathLike[str], outputs: Sequence[str | os.PathLike[str]],
                      *, title: str, samples_path: str | os.PathLike[str] | None = None,
                      qc_path: str | os.PathLike[str] | None = None) -> None:
    """Write the experiment-wide comparison figure, grouped by condition with a sample sheet.

    Conditions appear in sample-sheet order; objects flagged in the QC table (`qc_path`,
    optional) are ringed in red.

    Raises
    ------
    ValueError
        If an input is unreadable or malformed.
    """
    import pandas as pd

    metrics = tables.read_metrics(metrics_path)
    if samples_path is not None:
        sheet = samples.read_samples(samples_path)
        metrics = samples.merge_samples(metrics, sheet, source=samples_path)
        order = list(dict.fromkeys(sheet["condition"]))  # legend in sample-sheet order
        metrics["condition"] = pd.Categorical(metrics["condition"], categories=order)
    flags = None if qc_path is None else qc.read_qc(qc_path)
    plots.save_figure(plots.plot_experiment(metrics, flags, title=title), outputs)


def annotate_metrics(metrics_path: str | os.PathLike[str], samples_path: str | os.PathLike[str],
                     output: str | os.PathLike[str]) -> int:
    """Write the metrics CSV with the sample sheet's columns after ``position``; return rows."""
    from spheroseg.atomic import write_text

    import pandas as pd

    tables.read_metrics(metrics_path)  # checks the file and its key columns
    verbatim = pd.read_csv(metrics_path, dtype=str, keep_default_na=False)
    merged = samples.merge_samples(verbatim, samples.read_samples(samples_path),
                                   source=samples_path)
    write_text(output, merged.to_csv(index=False, lineterminator="\n"))
    return len(merged)


def _annotation_folders(card: Mapping[str, Any] | None) -> list[Path]:
    """The annotation folders a model card names that exist here: ``training.annotations`` is one
    folder (older cards) or a list of ``{"annotations": folder, "pixel_size_um": ...}`` sources."""
    sources = (card or {}).get("training", {}).get("annotations")
    if not isinstance(sources, list):
        sources = [sources]
    names = [source.get("annotations") if isinstance(source, Mapping) else source for source in sources]
    return [Path(name) for name in names if isinstance(name, str) and name and Path(name).is_dir()]


def parameters_report(config: Mapping[str, Any], output: str | os.PathLike[str], *,
                      model_path: str | os.PathLike[str] | None = None,
                      title: str = "Run parameters") -> None:
    """Write the run-parameters page: configuration and the model card (read and validated)."""
    from spheroseg.atomic import write_text
    from spheroseg.modelcard import card_path_for, read_card

    from spheroseg.propose import proposal_status

    card = None if model_path is None else read_card(card_path_for(model_path))
    proposals = [row for folder in _annotation_folders(card) for row in proposal_status(folder)]
    write_text(output, html.parameters_page(config, card, title=title, model_path=str(model_path or ""),
                                            proposals=proposals))
