"""The command line's one-line errors for what the operating system refuses about a path."""

from __future__ import annotations

import pytest

from spheroseg.cli import describe_os_error, main
from spheroseg.measure import metric_columns


def test_output_folder_blocked_by_a_file_is_named(tmp_path, capsys):
    (tmp_path / "plain").write_text("x")
    metrics = tmp_path / "m.csv"
    metrics.write_text(",".join(metric_columns(pixel_size_um=None, time_interval_s=None)) + "\n")
    assert main(["aggregate", "--output", str(tmp_path / "plain" / "all.csv"), str(metrics)]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == f"spheroseg aggregate: error: {tmp_path / 'plain'} must be a folder, got a file of that name in the way"


@pytest.mark.parametrize(("error", "expected"), [
    (NotADirectoryError(20, "Not a directory", "{tmp}/plain/images"), "{tmp}/plain/images must lie in a folder, got a file in the way ({tmp}/plain)"),
    (IsADirectoryError(21, "Is a directory", "{tmp}"), "{tmp} must be a file, got a folder"),
    (FileNotFoundError(2, "No such file or directory", "{tmp}/gone.csv"), "No such file or directory: {tmp}/gone.csv"),
    (OSError("a message of spheroseg's own"), "a message of spheroseg's own"),
], ids=["not-a-directory", "is-a-directory", "not-found", "own-message"])
def test_describe_os_error(tmp_path, error, expected):
    (tmp_path / "plain").write_text("x")
    if error.filename is not None:
        error = type(error)(error.errno, error.strerror, error.filename.format(tmp=tmp_path))
    assert describe_os_error(error) == expected.format(tmp=tmp_path)
