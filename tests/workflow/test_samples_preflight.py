"""The sample sheet (`samples`) is checked while the DAG is built: a bad sheet stops the run
before any job, naming the file and the key; positions the experiment does not have are said
once on the console."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.workflow

DEMO = {"folder": "resources/demo", "positions": {"pos0": 1, "pos1": 1}, "timepoints": 2,
        "size": [64, 64], "seed": 0, "pixel_size_um": 2.0, "time_interval_s": 3600,
        "artefact": None}


def _config(workdir: Path, sheet: bytes) -> str:
    """Write the sheet and a config with the tiny demo that uses it; return the config path."""
    (workdir / "samples.tsv").write_bytes(sheet)
    (workdir / "config.yaml").write_text(yaml.safe_dump({"demo": DEMO, "samples": "samples.tsv"}))
    return str(workdir / "config.yaml")


@pytest.mark.parametrize(("sheet", "message"), [
    (b"position\tcondition\npos0\tctl\n",
     "every position of the experiment must be in the sample sheet, got 1 of 2 missing: 'pos1' "
     "(config key 'samples', in samples.tsv)"),
    ("position\tcondition\npos0\tcontr\u00f4le\npos1\tdrug\n".encode("latin-1"),
     "sample sheet must be UTF-8 text (save it with UTF-8 encoding), got bytes that are not "
     "(invalid continuation byte at byte 29) (config key 'samples', in samples.tsv)"),
    (b"well\tgroup\npos0\tctl\npos1\tdrug\n",
     "sample sheet columns must include ['position', 'condition'], got ['well', 'group'] "
     "(config key 'samples', in samples.tsv)"),
], ids=["position-missing", "latin-1", "wrong-columns"])
def test_a_bad_sample_sheet_stops_before_any_job(tmp_path, run_snakemake, sheet, message):
    result = run_snakemake(tmp_path, "--cores", "1", "--configfile", _config(tmp_path, sheet),
                           check=False)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Building DAG of jobs" not in result.stderr + result.stdout  # stopped while parsing
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()


def test_sample_sheet_positions_the_experiment_lacks_are_named_once(tmp_path, run_snakemake):
    sheet = b"\xef\xbb\xbfposition\tcondition\r\npos0\tctl\r\npos1\tdrug\r\npos9\tdrug\r\n"
    result = run_snakemake(tmp_path, "-n", "--configfile", _config(tmp_path, sheet))
    lines = [line for line in result.stderr.splitlines() if "sample sheet" in line]
    assert lines == ["spheroseg: the sample sheet lists 1 position(s) that the experiment does "
                     "not have, ignored: 'pos9' (config key 'samples', in samples.tsv)"]
