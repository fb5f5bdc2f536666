"""Messy real-world experiment folders (issue 14 and the first-run part of issue 13).

Each ``case_*`` function builds its messy folder inline under `workdir` (tiny images: a
bright disk on a dark, noisy background, 96 x 96 px, a few frames), runs the repository's
Snakefile on it the way a user would, and returns an `Outcome`: whether the workflow worked
or refused before any compute job, the one line it said, and the evidence (positions,
frames, CSV rows, console output). tests/realworld/test_*.py assert on the evidence;
benchmarks/messy_folders.py prints all cases as a table for reviewers.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from snakefile_runner import run_snakemake

REPO = Path(__file__).resolve().parents[2]
SIZE = 96
RUN_TIMEOUT_S = 600
# Jobs that read pixels or run the model; none may start when a case must stop up front.
COMPUTE_RULES = ("ingest", "tile", "predict", "stitch", "segment", "measure")


@dataclass
class Outcome:
    """What one case did: ``works``, ``refused`` (before any compute job) or ``stopped at
    ingest``, the one line it said, what the named fix then did, and the evidence."""

    case: str
    outcome: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    fix: str = ""


def snakemake(workdir: Path, *args: str, umask: int | None = None) -> subprocess.CompletedProcess[str]:
    """Run the repository's Snakefile in `workdir` on 2 cores; the caller checks the outcome."""
    return run_snakemake(workdir, "--cores", "2", *args, check=False, timeout=RUN_TIMEOUT_S, umask=umask)


def disk_frames(frames: int, *, seed: int = 0, size: int = SIZE, dtype: str = "uint16") -> np.ndarray:
    """(T, Y, X) frames of one bright disk (radius 20 + t px) on a dark noisy background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    stack = []
    for t in range(frames):
        radius = 20 + t
        inside = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= radius ** 2
        stack.append(np.where(inside, 3000.0, 300.0) + rng.normal(0, 30, (size, size)))
    return np.clip(np.stack(stack), 0, None).astype(dtype)


def write_ome(path: Path, data: np.ndarray, *, pixel_size_um: float | None = None,
              interval_s: float | None = None) -> Path:
    """A (T, Y, X) OME-TIFF, with the physical sizes given (none: no metadata)."""
    metadata: dict[str, Any] = {"axes": "TYX"}
    if pixel_size_um is not None:
        metadata.update(PhysicalSizeX=pixel_size_um, PhysicalSizeY=pixel_size_um)
    if interval_s is not None:
        metadata["TimeIncrement"] = interval_s
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, data, ome=True, photometric="minisblack", metadata=metadata)
    return path


def write_plain(path: Path, data: np.ndarray) -> Path:
    """A plain TIFF without any calibration (what most lab folders hold)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, data, photometric="minisblack")
    return path


def write_bare_stack(path: Path, data: np.ndarray) -> Path:
    """What a bare ``tifffile.imwrite(path, stack)`` of a (3 or 4, Y, X) stack writes (tifffile
    up to 2026 at least, and such files stay on disks): one RGB(A) page, separate planes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, data, photometric="rgb", planarconfig="separate")
    return path


def config_args(experiment: Path, **sections: Any) -> list[str]:
    """``--config`` arguments: the experiment, then ``key=value`` (dicts as YAML flow maps)."""
    entries = [f"experiment={experiment}"]
    for key, value in sections.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{name}: {json.dumps(item)}" for name, item in value.items())
            entries.append(f"{key}={{{inner}}}")
        else:
            entries.append(f"{key}={value}")
    return ["--config", *entries]


def results_of(workdir: Path, name: str) -> Path:
    """The results folder of experiment `name` in `workdir`."""
    return workdir / "results" / name


def metrics_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a metrics (or QC) CSV."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def ran_rules(result: subprocess.CompletedProcess[str]) -> list[str]:
    """Rules whose jobs Snakemake started (from its console output)."""
    return re.findall(r"^(?:local)?rule (\w+):", result.stdout + result.stderr, flags=re.MULTILINE)


def first_error(result: subprocess.CompletedProcess[str]) -> str:
    """The line of Snakemake's output that states the refusal."""
    lines = [line.strip() for line in (result.stderr + result.stdout).splitlines()]
    for marker in ("must ", "error:"):
        found = [line for line in lines if marker in line and not line.startswith("File ")]
        if found:
            return found[0]
    return lines[-1] if lines else ""


def snapshot(workdir: Path) -> dict[str, int]:
    """Every file under workdir/results with its modification time (ns)."""
    return {str(path.relative_to(workdir)): path.stat().st_mtime_ns
            for path in sorted((workdir / "results").rglob("*")) if path.is_file()}


def refused(case: str, result: subprocess.CompletedProcess[str], workdir: Path,
            before: dict[str, int], **evidence: Any) -> Outcome:
    """Outcome of a run that had to stop before any compute job: it failed, started no
    compute job and wrote or changed no file under results/ (`before` is `snapshot`)."""
    started = [rule for rule in ran_rules(result) if rule in COMPUTE_RULES]
    after = snapshot(workdir)
    changed = sorted(name for name, stamp in after.items() if before.get(name) != stamp)
    kind = "refused" if result.returncode != 0 and not started and not changed else "FAILED"
    return Outcome(case, kind, first_error(result),
                   {"returncode": result.returncode, "compute_jobs": started,
                    "changed_outputs": changed, "stderr": result.stderr, **evidence})


def completed(case: str, result: subprocess.CompletedProcess[str], results: Path,
              message: str = "", **evidence: Any) -> Outcome:
    """Outcome of a run that had to finish; evidence: positions and rows of metrics.csv."""
    table = results / "metrics.csv"
    rows = metrics_rows(table) if table.is_file() else []
    positions = sorted({row["position"] for row in rows})
    kind = "works" if result.returncode == 0 and rows else "FAILED"
    if kind == "FAILED":
        message = first_error(result)
    return Outcome(case, kind, message,
                   {"returncode": result.returncode, "rows": rows, "positions": positions,
                    "stderr": result.stderr, **evidence})


def frames_of(results: Path) -> dict[str, int]:
    """Position folder -> number of frames of its image.ome.zarr."""
    from spheroseg import ngff

    return {image.parent.name: ngff.read_metadata(image).shape[0]
            for image in sorted(results.glob("*/image.ome.zarr"))}


def metrics_target(name: str) -> str:
    """The experiment metrics CSV of `name` (ingest ... measure, aggregate)."""
    return f"results/{name}/metrics.csv"


# --- 1. ingest.pattern from --config and --configfile ---------------------------------


def _pattern_folder(root: Path, file_name: Callable[[str, int], str]) -> Path:
    """Per-timepoint files of positions A and B, two frames each."""
    folder = root / "timepoints"
    for seed, position in enumerate("AB"):
        for t, frame in enumerate(disk_frames(2, seed=seed)):
            write_plain(folder / file_name(position, t), frame)
    return folder


def case_pattern_config(workdir: Path) -> Outcome:
    """1. --config 'ingest={pattern: "{position}_t{timepoint}.tif"}' runs (was a ParserError)."""
    folder = _pattern_folder(workdir, lambda p, t: f"{p}_t{t}.tif")
    result = snakemake(workdir, metrics_target("timepoints"),
                       *config_args(folder, ingest={"pattern": "{position}_t{timepoint}.tif"}))
    results = results_of(workdir, "timepoints")
    return completed("1a pattern via --config", result, results,
                     "positions A, B from 4 per-timepoint files", frames=frames_of(results))


def case_pattern_configfile(workdir: Path) -> Outcome:
    """1. pattern "P{position}_t{timepoint}.tif" in a --configfile (was a WildcardError)."""
    folder = _pattern_folder(workdir, lambda p, t: f"P{p}_t{t}.tif")
    config = workdir / "mine.yaml"
    config.write_text(f"experiment: {json.dumps(str(folder))}\n"
                      "ingest:\n  pattern: \"P{position}_t{timepoint}.tif\"\n", encoding="utf-8")
    result = snakemake(workdir, metrics_target("timepoints"), "--configfile", str(config))
    results = results_of(workdir, "timepoints")
    return completed("1b pattern via --configfile", result, results,
                     "positions A, B; the pattern is not a wildcard", frames=frames_of(results))


def case_pattern_report(workdir: Path) -> Outcome:
    """1. pattern "x{position}.ome.tif" through report_parameters (config JSON in params)."""
    folder = workdir / "xfiles"
    for seed, position in enumerate(("1", "2")):
        write_ome(folder / f"x{position}.ome.tif", disk_frames(2, seed=seed))
    target = "results/xfiles/report/run_parameters.html"
    result = snakemake(workdir, metrics_target("xfiles"), target,
                       *config_args(folder, ingest={"pattern": "x{position}.ome.tif"}))
    results = results_of(workdir, "xfiles")
    page = workdir / target
    text = page.read_text(encoding="utf-8") if page.is_file() else ""
    return completed("1c pattern in report_parameters", result, results,
                     "positions 1, 2; run_parameters.html shows the pattern",
                     parameters_page=text, frames=frames_of(results))


# --- 2. two folders with the same name --------------------------------------------


def case_same_name(workdir: Path) -> Outcome:
    """2. /data/e1/raw then /data/e2/raw: the second refuses and says experiment_name."""
    first, second = workdir / "e1" / "raw", workdir / "e2" / "raw"
    write_plain(first / "A.tif", disk_frames(2, seed=1))
    write_plain(first / "B.tif", disk_frames(2, seed=2))
    write_plain(second / "A.tif", disk_frames(2, seed=3))
    done = snakemake(workdir, metrics_target("raw"), *config_args(first))
    before = (results_of(workdir, "raw") / "metrics.csv").read_bytes() if done.returncode == 0 else b""
    before_clash = snapshot(workdir)
    clash = snakemake(workdir, metrics_target("raw"), *config_args(second))
    outcome = refused("2 same folder name", clash, workdir, before_clash,
                      first_returncode=done.returncode)
    after = (results_of(workdir, "raw") / "metrics.csv").read_bytes() if before else b""
    named = snakemake(workdir, metrics_target("e2_raw"), *config_args(second),
                      "experiment_name=e2_raw")
    record = results_of(workdir, "raw") / "experiment.json"
    outcome.fix = f"experiment_name=e2_raw: exit {named.returncode}, results/e2_raw/"
    outcome.evidence.update(
        first_results_unchanged=bool(before) and before == after,
        record=json.loads(record.read_text(encoding="utf-8")) if record.is_file() else None,
        named_returncode=named.returncode,
        named_positions=sorted({row["position"] for row in metrics_rows(
            results_of(workdir, "e2_raw") / "metrics.csv")}) if named.returncode == 0 else [])
    return outcome


# --- 3. multi-series OME-TIFF -----------------------------------------------------


def case_multi_series(workdir: Path) -> Outcome:
    """3. One OME-TIFF with series A1 (3 frames) and B1 (2 frames): two positions."""
    folder = workdir / "plate"
    folder.mkdir()
    with tifffile.TiffWriter(folder / "plate.ome.tif", ome=True) as writer:
        writer.write(disk_frames(3, seed=1), photometric="minisblack",
                     metadata={"axes": "TYX", "Name": "A1"})
        writer.write(disk_frames(2, seed=2), photometric="minisblack",
                     metadata={"axes": "TYX", "Name": "B1"})
    result = snakemake(workdir, metrics_target("plate"), *config_args(folder))
    results = results_of(workdir, "plate")
    return completed("3 multi-series OME-TIFF", result, results,
                     "each series is a position: plate_A1, plate_B1", frames=frames_of(results))


# --- 4. a constant extra page -----------------------------------------------------


def case_blank_page(workdir: Path) -> Outcome:
    """4. A two-page TIFF whose second page is constant 65535: reported and QC-flagged."""
    folder = workdir / "blank"
    frames = disk_frames(2, seed=4)
    frames[1] = 65535
    write_plain(folder / "A.tif", frames)
    qc_target = "results/blank/A/qc.csv"
    result = snakemake(workdir, metrics_target("blank"), qc_target, *config_args(folder))
    results = results_of(workdir, "blank")
    log = results / "A" / "logs" / "ingest.log"
    qc = metrics_rows(workdir / qc_target) if (workdir / qc_target).is_file() else []
    return completed("4 constant extra page", result, results,
                     "ingest log names the blank frame; QC flag blank_frame at t=1",
                     ingest_log=log.read_text(encoding="utf-8") if log.is_file() else "",
                     qc=qc)


# --- 5. late failures, now early or gone ------------------------------------------


def case_single_frame_beside_series(workdir: Path) -> Outcome:
    """5a. A single frame without interval next to a time-lapse with one: aggregate works."""
    folder = workdir / "mixed"
    write_ome(folder / "lapse.ome.tif", disk_frames(3, seed=5), pixel_size_um=2.0, interval_s=600)
    write_ome(folder / "single.ome.tif", disk_frames(1, seed=6), pixel_size_um=2.0)
    result = snakemake(workdir, metrics_target("mixed"), *config_args(folder))
    return completed("5a single frame + time-lapse", result, results_of(workdir, "mixed"),
                     "one metrics.csv; single frame has time_s 0")


def case_channel_beyond(workdir: Path) -> Outcome:
    """5b. ingest.channel 1 on a one-channel file: refused before any job."""
    folder = workdir / "onechannel"
    write_plain(folder / "A.tif", disk_frames(2))
    result = snakemake(workdir, metrics_target("onechannel"),
                       *config_args(folder, ingest={"channel": 1}))
    return refused("5b channel beyond the file", result, workdir, {})


def case_training_without_annotations(workdir: Path) -> Outcome:
    """5c. training.enabled without training.annotations: refused before any job."""
    folder = workdir / "train"
    write_plain(folder / "A.tif", disk_frames(2))
    result = snakemake(workdir, metrics_target("train"),
                       *config_args(folder, training={"enabled": True}))
    return refused("5c training without annotations", result, workdir, {})


def case_nan_pixels(workdir: Path) -> Outcome:
    """5d. A float image with a 10 x 10 NaN patch: ingest stops, the console names the file and
    ingest.fill_nonfinite; with fill_nonfinite 0 the position is measured."""
    folder = workdir / "nan"
    frames = disk_frames(2, seed=7, dtype="float32")
    frames[1, :10, :10] = np.nan
    write_plain(folder / "A.tif", frames)
    stopped = snakemake(workdir, metrics_target("nan"), *config_args(folder))
    console = [line for line in stopped.stderr.splitlines() if "pixel values must be finite" in line]
    filled = snakemake(workdir, metrics_target("nan"),
                       *config_args(folder, ingest={"fill_nonfinite": 0}))
    after_fill = completed("5d NaN pixels", filled, results_of(workdir, "nan"))
    later = [rule for rule in ran_rules(stopped) if rule in COMPUTE_RULES and rule != "ingest"]
    good = stopped.returncode != 0 and console and not later
    message = console[0].split("job failed: ")[-1] if console else first_error(stopped)
    return Outcome("5d NaN pixels", "stopped at ingest" if good else "FAILED", message,
                   {**after_fill.evidence, "stopped_returncode": stopped.returncode,
                    "console_lines": console, "jobs_after_ingest": later},
                   fix=f"ingest.fill_nonfinite=0: {after_fill.outcome}, "
                       f"{len(after_fill.evidence['rows'])} rows")


# --- 6. mistyped model after a completed run --------------------------------------


def case_mistyped_model(workdir: Path) -> Outcome:
    """6. model: models/defualt.pt after a completed run: refused, not "Nothing to be done"."""
    folder = workdir / "typo"
    write_plain(folder / "A.tif", disk_frames(2))
    done = snakemake(workdir, metrics_target("typo"), *config_args(folder))
    before = snapshot(workdir)
    typo = snakemake(workdir, metrics_target("typo"), *config_args(folder, model="models/defualt.pt"))
    return refused("6 mistyped model", typo, workdir, before, first_returncode=done.returncode,
                   first_outputs=len(before))


# --- 7. umask ----------------------------------------------------------------------


def case_umask(workdir: Path) -> Outcome:
    """7. Under umask 022 every output folder is 0755 and every file 0644 (metrics/ was 0700)."""
    folder = workdir / "shared"
    write_plain(folder / "A.tif", disk_frames(2))
    result = snakemake(workdir, metrics_target("shared"), *config_args(folder), umask=0o022)
    results = results_of(workdir, "shared")
    modes = {str(path.relative_to(results)): oct(path.stat().st_mode & 0o777)
             for path in sorted(results.rglob("*")) if not path.name.startswith(".")}
    private = {name: mode for name, mode in modes.items() if mode not in ("0o755", "0o644")}
    return completed("7 umask 022", result, results, "all outputs 0755/0644",
                     modes=modes, private=private)


# --- 8. braces and dollars in names ------------------------------------------------


def case_braces_and_dollars(workdir: Path) -> Outcome:
    """8. Folder "run {1} $x" with files "x{position}y.tif" and "a$b.tif": every stage and plot."""
    folder = workdir / "run {1} $x"
    write_plain(folder / "x{position}y.tif", disk_frames(2, seed=8))
    write_plain(folder / "a$b.tif", disk_frames(2, seed=9))
    result = snakemake(workdir, *config_args(folder))
    results = workdir / "results" / "run (1) $x"
    plots = sorted(str(p.relative_to(results)) for p in results.rglob("*.png"))
    rows = metrics_rows(results / "metrics.csv") if (results / "metrics.csv").is_file() else []
    outcome = completed("8 braces and $ in names", result, results,
                        "folders use ( ) for { }; CSVs and plots keep the names", plots=plots)
    outcome.evidence["experiments"] = sorted({row["experiment"] for row in rows})
    return outcome


# --- 9. an ambiguous stack ----------------------------------------------------------


def case_ambiguous_stack(workdir: Path) -> Outcome:
    """9. tifffile.imwrite(path, stack) of shape (4, Y, X): refused naming ingest.axes; with
    ingest.axes "tyx" it is 4 frames."""
    folder = workdir / "bare"
    write_bare_stack(folder / "A.tif", disk_frames(4, seed=10))
    stopped = snakemake(workdir, metrics_target("bare"), *config_args(folder))
    outcome = refused("9 ambiguous (4, Y, X) stack", stopped, workdir, {})
    fixed = snakemake(workdir, metrics_target("bare"), *config_args(folder, ingest={"axes": "tyx"}))
    results = results_of(workdir, "bare")
    outcome.fix = f"ingest.axes=tyx: exit {fixed.returncode}, frames {frames_of(results)}"
    outcome.evidence.update(fixed_returncode=fixed.returncode, fixed_frames=frames_of(results),
                            fixed_rows=metrics_rows(results / "metrics.csv")
                            if (results / "metrics.csv").is_file() else [])
    return outcome


# --- issue 13: a folder without pixel size finishes ---------------------------------


def case_no_pixel_size(workdir: Path) -> Outcome:
    """13. Plain TIFFs without pixel size: px units, one console warning naming
    ingest.pixel_size_um; segment.min_area_px then decides what is kept."""
    folder = workdir / "uncalibrated"
    write_plain(folder / "A.tif", disk_frames(2, seed=11))
    write_plain(folder / "B.tif", disk_frames(2, seed=12))
    result = snakemake(workdir, metrics_target("uncalibrated"), *config_args(folder))
    warnings = [line for line in result.stderr.splitlines() if "ingest.pixel_size_um" in line]
    outcome = completed("13 no pixel size", result, results_of(workdir, "uncalibrated"),
                        warnings[0] if warnings else "", console_warnings=warnings)
    strict = snakemake(workdir, metrics_target("uncalibrated"),
                       *config_args(folder, segment={"min_area_px": 100000}))
    table = results_of(workdir, "uncalibrated") / "metrics.csv"
    strict_rows = metrics_rows(table) if table.is_file() else None
    outcome.fix = (f"segment.min_area_px=100000: exit {strict.returncode}, "
                   f"{'?' if strict_rows is None else len(strict_rows)} rows")
    outcome.evidence.update(strict_returncode=strict.returncode, strict_rows=strict_rows)
    return outcome


CASES: Sequence[Callable[[Path], Outcome]] = (
    case_pattern_config, case_pattern_configfile, case_pattern_report, case_same_name,
    case_multi_series, case_blank_page, case_single_frame_beside_series, case_channel_beyond,
    case_training_without_annotations, case_nan_pixels, case_mistyped_model, case_umask,
    case_braces_and_dollars, case_ambiguous_stack, case_no_pixel_size,
)
