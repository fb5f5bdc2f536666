"""The progress helper: log lines off a terminal, a tqdm bar on one, lines in a job's stderr."""

from __future__ import annotations

import io
import logging
import re
import subprocess
import sys

import pytest

from spheroseg.progress import Progress, progress


def progress_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "spheroseg.progress"]


@pytest.mark.parametrize(
    ("total", "step", "expected"),
    [(40, 4, [f"{n}/40" for n in range(4, 41, 4)]), (100, 1, [f"{n}/100" for n in range(5, 101, 5)]),
     (3, 1, ["1/3", "2/3", "3/3"])],
    ids=["batches-of-4", "every-5-percent", "fewer-items-than-steps"],
)
def test_logs_a_line_every_five_percent_and_at_the_end(caplog, total, step, expected):
    caplog.set_level(logging.INFO, logger="spheroseg.progress")
    with Progress(total, description="tiles") as bar:
        for _ in range(0, total, step):
            bar.update(step)
    lines = progress_lines(caplog)
    assert [re.search(r"\d+/\d+", line).group() for line in lines] == expected
    assert lines[-1].startswith(f"tiles {total}/{total} (100%), ") and lines[-1].endswith(" s")


def test_line_carries_throughput_and_postfix(caplog):
    caplog.set_level(logging.INFO, logger="spheroseg.progress")
    bar = Progress(2, description="step", pixels_per_item=1_000_000)
    bar.update(2, {"loss": "0.1234"})
    (line,) = progress_lines(caplog)
    assert re.fullmatch(r"step 2/2 \(100%\), loss 0\.1234, [0-9.]+ Mpx/s, [0-9.]+ s", line), line


def test_resumed_run_reports_only_what_is_left(caplog):
    caplog.set_level(logging.INFO, logger="spheroseg.progress")
    bar = Progress(100, description="step", initial=50, step_percent=25)
    for _ in range(50):
        bar.update()
    assert [line.split(" (")[0] for line in progress_lines(caplog)] == ["step 75/100", "step 100/100"]


def test_disabled_reports_nothing(caplog):
    caplog.set_level(logging.INFO, logger="spheroseg.progress")
    assert list(progress(range(5), description="frames", enabled=False)) == [0, 1, 2, 3, 4]
    assert progress_lines(caplog) == []


class Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_terminal_gets_a_bar_instead_of_lines(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="spheroseg.progress")
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert list(progress(iter(range(8)), total=8, description="frames", pixels_per_item=10)) == list(range(8))
    assert progress_lines(caplog) == []
    drawn = terminal.getvalue()
    assert "frames" in drawn and "8/8" in drawn and "Mpx/s" in drawn


def test_ingest_job_log_holds_progress_lines(tmp_path):
    # A Snakemake job's stderr is its log file: progress must arrive there as lines.
    from spheroseg.synthetic import write_demo_experiment

    write_demo_experiment(tmp_path / "exp", positions={"a": 1}, n_timepoints=4, shape=(64, 64))
    log = tmp_path / "ingest.log"
    command = [sys.executable, "-c", "import sys; from spheroseg.cli import main; sys.exit(main())",
               "ingest", "--experiment", tmp_path / "exp", "--position", "a",
               "--output", tmp_path / "a.ome.zarr"]
    with open(log, "w") as stderr:
        subprocess.run(command, stderr=stderr, check=True)
    lines = log.read_text().splitlines()
    assert "spheroseg ingest: a: frames 4/4 (100%)" in "\n".join(lines)
    assert sum("a: frames" in line for line in lines) == 4
