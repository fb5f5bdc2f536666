"""Issue 14 (and the first-run part of issue 13) through the real Snakefile: one test per
numbered case. Each builds its messy folder inline (messy_cases.py) and asserts the outcome:
the right positions, frames and CSV rows, or a refusal before any compute job that names the
file or config key."""

from __future__ import annotations

from pathlib import Path

import pytest

import messy_cases as cases
from snakefile_runner import require_spheroseg

pytestmark = [pytest.mark.workflow, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _needs_workflow() -> None:
    """Skip without the spheroseg command next to this Python or the shipped model."""
    require_spheroseg()
    if not (cases.REPO / "models" / "default.pt").is_file():
        pytest.skip("models/default.pt is missing")


def assert_works(outcome: cases.Outcome) -> None:
    """The run finished and wrote a non-empty experiment metrics.csv."""
    assert outcome.outcome == "works", (outcome.message, outcome.evidence["stderr"][-3000:])


def assert_refused(outcome: cases.Outcome, *needles: str) -> None:
    """The run failed before any compute job, wrote nothing, and said `needles` on one line."""
    evidence = outcome.evidence
    assert evidence["returncode"] != 0, evidence["stderr"][-3000:]
    assert evidence["compute_jobs"] == [] and evidence["changed_outputs"] == []
    assert outcome.outcome == "refused"
    lines = [line for line in evidence["stderr"].splitlines() if all(n in line for n in needles)]
    assert lines, (needles, evidence["stderr"][-3000:])


def rows_per_position(outcome: cases.Outcome) -> dict[str, list[int]]:
    """Position -> timepoints of its metrics rows."""
    found: dict[str, list[int]] = {}
    for row in outcome.evidence["rows"]:
        found.setdefault(row["position"], []).append(int(row["timepoint"]))
    return {name: sorted(times) for name, times in found.items()}


@pytest.mark.parametrize(
    "case", [cases.case_pattern_config, cases.case_pattern_configfile], ids=["config", "configfile"])
def test_1_pattern_from_config_and_configfile(tmp_path: Path, case) -> None:
    outcome = case(tmp_path)
    assert_works(outcome)
    assert outcome.evidence["frames"] == {"A": 2, "B": 2}
    assert rows_per_position(outcome) == {"A": [0, 1], "B": [0, 1]}


def test_1_pattern_reaches_report_parameters(tmp_path: Path) -> None:
    outcome = cases.case_pattern_report(tmp_path)
    assert_works(outcome)
    assert outcome.evidence["frames"] == {"1": 2, "2": 2}
    assert "x{position}.ome.tif" in outcome.evidence["parameters_page"]


def test_2_same_folder_name_refuses_and_experiment_name_separates(tmp_path: Path) -> None:
    outcome = cases.case_same_name(tmp_path)
    assert outcome.evidence["first_returncode"] == 0
    assert_refused(outcome, "experiment_name", str(tmp_path / "e1" / "raw"), "experiment.json")
    assert outcome.evidence["first_results_unchanged"]
    assert outcome.evidence["record"]["source"] == str(tmp_path / "e1" / "raw")
    assert outcome.evidence["named_returncode"] == 0
    assert outcome.evidence["named_positions"] == ["A"]


def test_3_each_series_of_a_multi_series_file_is_a_position(tmp_path: Path) -> None:
    outcome = cases.case_multi_series(tmp_path)
    assert_works(outcome)
    assert outcome.evidence["frames"] == {"plate_A1": 3, "plate_B1": 2}
    assert rows_per_position(outcome) == {"plate_A1": [0, 1, 2], "plate_B1": [0, 1]}


def test_4_constant_page_is_reported_and_flagged(tmp_path: Path) -> None:
    outcome = cases.case_blank_page(tmp_path)
    assert_works(outcome)
    assert "constant (blank) frame(s) at timepoint 1 (all 65535)" in outcome.evidence["ingest_log"]
    blank = [(row["timepoint"], row["flag"]) for row in outcome.evidence["qc"]
             if row["flag"] == "blank_frame"]
    assert blank == [("1", "blank_frame")]


def test_5a_single_frame_beside_time_lapse_aggregates(tmp_path: Path) -> None:
    outcome = cases.case_single_frame_beside_series(tmp_path)
    assert_works(outcome)
    assert rows_per_position(outcome) == {"lapse": [0, 1, 2], "single": [0]}
    times = {(row["position"], row["timepoint"]): (row["time_s"], row["time_frame"])
             for row in outcome.evidence["rows"]}
    assert times[("lapse", "2")] == ("1200.000000", "")
    assert times[("single", "0")] == ("0.000000", "0")


@pytest.mark.parametrize(
    ("case", "needles"),
    [(cases.case_channel_beyond, ("ingest.channel", "A.tif")),
     (cases.case_training_without_annotations, ("training.annotations",))],
    ids=["channel", "annotations"])
def test_5bc_config_that_cannot_work_stops_before_any_job(tmp_path: Path, case, needles) -> None:
    assert_refused(case(tmp_path), *needles)


def test_5d_nan_pixels_stop_at_ingest_with_file_key_and_console(tmp_path: Path) -> None:
    outcome = cases.case_nan_pixels(tmp_path)
    evidence = outcome.evidence
    assert evidence["stopped_returncode"] != 0 and evidence["jobs_after_ingest"] == []
    (line,) = evidence["console_lines"]
    assert "ingest.fill_nonfinite" in line and "A.tif" in line and "timepoint 1" in line
    assert outcome.outcome == "stopped at ingest"
    assert evidence["returncode"] == 0  # the rerun with ingest.fill_nonfinite: 0
    assert rows_per_position(outcome) == {"A": [0, 1]}


def test_6_mistyped_model_after_a_completed_run_refuses(tmp_path: Path) -> None:
    outcome = cases.case_mistyped_model(tmp_path)
    assert outcome.evidence["first_returncode"] == 0 and outcome.evidence["first_outputs"] > 0
    assert_refused(outcome, "config key 'model'", "models/defualt.pt")
    assert "Nothing to be done" not in outcome.evidence["stderr"]


def test_7_outputs_keep_the_umask(tmp_path: Path) -> None:
    outcome = cases.case_umask(tmp_path)
    assert_works(outcome)
    modes = outcome.evidence["modes"]
    assert modes["A/metrics"] == "0o755" and modes["A/metrics/t0000.csv"] == "0o644"
    assert outcome.evidence["private"] == {}


def test_8_braces_and_dollars_in_names_work_through_every_stage(tmp_path: Path) -> None:
    outcome = cases.case_braces_and_dollars(tmp_path)
    assert_works(outcome)
    assert rows_per_position(outcome) == {"a$b": [0, 1], "x{position}y": [0, 1]}
    assert outcome.evidence["experiments"] == ["run {1} $x"]
    assert {"x(position)y/report/metrics_over_time.png", "a$b/report/montage.png",
            "report/comparison.png"} <= set(outcome.evidence["plots"])


def test_9_ambiguous_stack_names_ingest_axes_and_the_key_works(tmp_path: Path) -> None:
    outcome = cases.case_ambiguous_stack(tmp_path)
    assert_refused(outcome, "ingest.axes", "'tyx'", "A.tif")
    assert outcome.evidence["fixed_returncode"] == 0
    assert outcome.evidence["fixed_frames"] == {"A": 4}
    assert sorted(int(row["timepoint"]) for row in outcome.evidence["fixed_rows"]) == [0, 1, 2, 3]


def test_13_folder_without_pixel_size_finishes_in_pixels(tmp_path: Path) -> None:
    outcome = cases.case_no_pixel_size(tmp_path)
    assert_works(outcome)
    assert rows_per_position(outcome) == {"A": [0, 1], "B": [0, 1]}
    assert all(row["area_px2"] and "area_um2" not in row for row in outcome.evidence["rows"])
    (warning,) = outcome.evidence["console_warnings"]  # said once, on the console
    assert "'A', 'B'" in warning and "segment.min_area_px" in warning
    assert outcome.evidence["strict_returncode"] == 0
    assert outcome.evidence["strict_rows"] == []  # segment='{min_area_px: 100000}' took effect
