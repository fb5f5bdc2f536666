"""``spheroseg report``: QC flags, metric plots, contour overlays and report pages.

Subcommands (docs/report.md):

``qc``          one position's temporal QC flags -> qc.csv
``merge-qc``    the positions' QC tables -> the experiment's qc.csv (+ HTML table)
``position``    one position's metric plots (PNG, SVG), contour montage, animated GIF
``experiment``  the experiment-wide comparison figure (by condition with a sample sheet)
``samples``     the metrics CSV with the sample sheet's columns merged in
``parameters``  an HTML page with the run's configuration and the model card
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from spheroseg.cli.arguments import add_verb, given

QC_OPTIONS = ("area_jump_fraction", "uncertain_fraction")
POSITION_OPTIONS = ("channel", "montage_frames", "gif_frames", "gif_size", "frame_ms")


def _add_qc(subparsers: Any) -> None:
    """The ``report qc`` parser."""
    parser = add_verb(
        subparsers, "qc", help="temporal QC flags of one position",
        description="Flag area jumps between consecutive frames, objects that appear or "
        "vanish, objects touching the border, frames where the model is unsure (share of "
        "pixels with probability in [0.3, 0.7]), blank frames and frames whose every object "
        "the size filter removed. Writes a tidy CSV, one row per flag.")
    parser.add_argument("--metrics", required=True, help="the position's metrics.csv")
    parser.add_argument("--probabilities", required=True, help="probabilities.ome.zarr")
    parser.add_argument("--image",
                        help="image.ome.zarr: flag the frames ingest found constant (blank)")
    parser.add_argument("--labels",
                        help="label image (IMAGE/labels/segmentation): flag the frames whose "
                        "every object the size filter removed (no_objects)")
    parser.add_argument("--experiment", required=True, help="experiment name for the table")
    parser.add_argument("--position", required=True, help="position name for the table")
    parser.add_argument("--area-jump-fraction", type=float,
                        help="flag |area change| / previous area above this")
    parser.add_argument("--uncertain-fraction", type=float,
                        help="flag frames with more unsure pixels than this share")
    parser.add_argument("--output", required=True, help="qc.csv to write")
    parser.set_defaults(func=_run_qc)


def _add_merge_qc(subparsers: Any) -> None:
    """The ``report merge-qc`` parser."""
    parser = add_verb(
        subparsers, "merge-qc", help="merge the positions' QC tables into the experiment's qc.csv",
        description="Concatenate per-position qc.csv files into one sorted table; "
        "optionally also an HTML page with a summary per position and the full table.")
    parser.add_argument("--output", required=True, help="experiment qc.csv to write")
    parser.add_argument("--html", dest="page", help="HTML page of the table to write")
    parser.add_argument("--title", help="page title")
    parser.add_argument("inputs", nargs="+", metavar="POSITION_QC_CSV")
    parser.set_defaults(func=_run_merge_qc)


def _add_position(subparsers: Any) -> None:
    """The ``report position`` parser."""
    parser = add_verb(
        subparsers, "position", help="metric plots, contour montage and GIF of one position",
        description="Write OUTPUT_DIR/metrics_over_time.{png,svg} (area, perimeter, "
        "circularity, aspect ratio over time, one line per main body, shed fragments counted, "
        "QC-flagged frames shaded), OUTPUT_DIR/montage.png and OUTPUT_DIR/overlay.gif "
        "(contours on the frames, main bodies numbered) and OUTPUT_DIR/overlay.html (the GIF "
        "for the Snakemake report).")
    for name, text in (("metrics", "the position's metrics.csv"), ("qc", "its qc.csv"),
                       ("image", "its image.ome.zarr"), ("contours", "its contours.geojson"),
                       ("output-dir", "folder for the figures"),
                       ("title", 'figure title, e.g. "demo / pos0"')):
        parser.add_argument(f"--{name}", required=True, help=text)
    parser.add_argument("--channel", type=int, help="image channel")
    parser.add_argument("--montage-frames", type=int, help="most frames in the montage")
    parser.add_argument("--gif-frames", type=int, help="most frames in the GIF")
    parser.add_argument("--gif-size", type=int, help="largest GIF edge in pixels")
    parser.add_argument("--frame-ms", type=int, help="display time per GIF frame in ms")
    parser.set_defaults(func=_run_position)


def _add_experiment(subparsers: Any) -> None:
    """The ``report experiment`` parser."""
    parser = add_verb(
        subparsers, "experiment", help="experiment-wide comparison figure",
        description="Plot area, perimeter, circularity and aspect ratio over time for all "
        "positions, one colour per condition when a sample sheet is given (else per "
        "position), thin lines per main body and thick lines for group means; shed fragments "
        "are counted in a third row.")
    parser.add_argument("--metrics", required=True, help="the experiment's metrics.csv")
    parser.add_argument("--samples", dest="samples_path",
                        help="sample sheet (TSV with position, condition, ...)")
    parser.add_argument("--qc", dest="qc_path",
                        help="the experiment's qc.csv (flagged objects get a red ring)")
    parser.add_argument("--title", required=True, help="figure title (the experiment name)")
    parser.add_argument("--output", required=True, nargs="+",
                        help="figure files to write (.png, .svg, .pdf)")
    parser.set_defaults(func=_run_experiment)


def _add_samples(subparsers: Any) -> None:
    """The ``report samples`` parser."""
    parser = subparsers.add_parser(
        "samples", help="merge the sample sheet's columns into a metrics CSV",
        description="Copy a metrics CSV verbatim with the sample sheet's columns (condition "
        "and any others) inserted after the position column.")
    parser.add_argument("--metrics", required=True, help="metrics.csv to annotate")
    parser.add_argument("--samples", required=True, help="sample sheet (TSV)")
    parser.add_argument("--output", required=True, help="annotated CSV to write")
    parser.set_defaults(func=_run_samples)


def _add_parameters(subparsers: Any) -> None:
    """The ``report parameters`` parser."""
    parser = add_verb(
        subparsers, "parameters", help="HTML page with the run configuration and the model card",
        description="Write an HTML page showing the effective workflow configuration (JSON "
        "given on the command line) and the model card beside MODEL.")
    parser.add_argument("--config-json", required=True, help="configuration as a JSON object")
    parser.add_argument("--model", dest="model_path", help="model whose JSON card is shown")
    parser.add_argument("--title", help="page title")
    parser.add_argument("--output", required=True, help="HTML page to write")
    parser.set_defaults(func=_run_parameters)


def register(subparsers: Any) -> None:
    """Add the ``report`` subcommand and its subcommands."""
    parser = subparsers.add_parser(
        "report", help="QC flags, plots, contour overlays and report pages",
        description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    commands = parser.add_subparsers(dest="report_command", required=True, metavar="STEP")
    for add in (_add_qc, _add_merge_qc, _add_position, _add_experiment, _add_samples,
                _add_parameters):
        add(commands)


def _log(message: str, *values: object) -> None:
    """Log one info line."""
    import logging

    logging.getLogger("spheroseg.report").info(message, *values)


def _run_qc(args: argparse.Namespace) -> None:
    from spheroseg.report.build import position_qc_table

    count = position_qc_table(args.metrics, args.probabilities, args.output,
                              experiment=args.experiment, position=args.position,
                              image_path=getattr(args, "image", None),
                              labels_path=getattr(args, "labels", None),
                              **given(args, QC_OPTIONS))
    _log("wrote %s (%d flags)", args.output, count)


def _run_merge_qc(args: argparse.Namespace) -> None:
    from spheroseg.report.build import experiment_qc_table

    count = experiment_qc_table(args.inputs, args.output, **given(args, ("page", "title")))
    _log("wrote %s (%d flags)", args.output, count)


def _run_position(args: argparse.Namespace) -> None:
    from spheroseg.report.build import position_report

    written = position_report(
        metrics_path=args.metrics, qc_path=args.qc, image_path=args.image,
        contours_path=args.contours, output_dir=args.output_dir, title=args.title,
        **given(args, POSITION_OPTIONS))
    _log("wrote %s", ", ".join(str(path) for path in written))


def _run_experiment(args: argparse.Namespace) -> None:
    from spheroseg.report.build import experiment_figure

    experiment_figure(args.metrics, args.output, title=args.title,
                      **given(args, ("samples_path", "qc_path")))
    _log("wrote %s", ", ".join(args.output))


def _run_samples(args: argparse.Namespace) -> None:
    from spheroseg.report.build import annotate_metrics

    rows = annotate_metrics(args.metrics, args.samples, args.output)
    _log("wrote %s (%d rows)", args.output, rows)


def _run_parameters(args: argparse.Namespace) -> None:
    from spheroseg.report.build import parameters_report

    try:
        config = json.loads(args.config_json)
    except json.JSONDecodeError as err:
        raise ValueError(f"--config-json must be a JSON object, got a JSON error "
                         f"{err.msg!r}") from err
    if not isinstance(config, dict):
        raise ValueError(f"--config-json must be a JSON object, got {type(config).__name__}")
    parameters_report(config, args.output, **given(args, ("model_path", "title")))
    _log("wrote %s", args.output)
