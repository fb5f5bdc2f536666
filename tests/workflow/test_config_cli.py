"""Config values given on the command line (``--config key='{...}'``) and configured paths,
checked when the DAG is built (dry runs: no job runs)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.workflow


@pytest.mark.parametrize("value", ["false", "off", "auto"], ids=["false", "off", "auto"])
def test_rescale_choices_the_docs_name_are_accepted_from_the_command_line(tmp_path, run_snakemake, value):
    """config/README.md allows ``false`` for predict.rescale; `--config` hands it over as a
    string, which the schema's enum must still accept (workflow audit C42)."""
    result = run_snakemake(tmp_path, "-n", "--config", f"predict={{rescale: {value}}}", check=False)
    assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]


def test_a_results_path_that_is_a_file_is_refused_before_any_job(tmp_path, run_snakemake):
    (tmp_path / "afile").write_text("x")
    result = run_snakemake(tmp_path, "-n", "--config", f"results={tmp_path / 'afile'}", check=False)
    assert result.returncode != 0
    console = result.stdout + result.stderr  # snakemake's runner merges them
    assert "results must be a folder (or not exist yet)" in console and "(config key 'results')" in console
    assert "Traceback" not in console and "NotADirectoryError" not in console


@pytest.mark.parametrize(("value", "line"), [
    ("ingest={channel: -1}", "ingest.channel must be an integer >= 0 or a non-empty string or a list of non-empty "
                             "strings, got -1 (config key 'ingest.channel')"),
    ("segment={treshold: 0.6}", "segment must have only the keys ["),
    ("measure={smoothing: gauss}", "measure.smoothing must be one of ['auto', 'none'] or a number >= 0 and < 50, got 'gauss'"),
    ("segment={threshold: 1.5}", "segment.threshold must be < 1, got 1.5 (config key 'segment.threshold')"),
], ids=["range", "misspelt-key", "one-of", "readme-example"])
def test_a_bad_value_is_one_line_naming_the_key(tmp_path, run_snakemake, value, line):
    """Snakemake's own validation says the same as a 10-20-line jsonschema dump (workflow audit F25)."""
    result = run_snakemake(tmp_path, "-n", "--config", value, check=False)
    console = result.stdout + result.stderr
    assert result.returncode != 0
    assert line in console, console[-2000:]
    assert "Failed validating" not in console


@pytest.mark.parametrize(("value", "line"), [
    ("demo={positions: {a/b: 1}}", "position names must be plain file names, got 'a/b' (config key 'demo.positions')"),
    ("demo={artefact: 'zz:1'}", "artefact must name one of the positions ['pos0', 'pos1'] and a timepoint in [0, 7], "
                                "got zz:1 (config key 'demo.artefact')"),
    ("demo={artefact: 'pos0:9'}", "got pos0:9 (config key 'demo.artefact')"),
], ids=["slash-in-position", "unknown-position", "timepoint-beyond"])
def test_demo_settings_the_demo_job_would_refuse_or_ignore_stop_the_run(tmp_path, run_snakemake, value, line):
    """A position 'a/b' failed as a MissingInputException; an artefact naming a position or
    timepoint the demo lacks was silently not injected (workflow audit D01, D02)."""
    result = run_snakemake(tmp_path, "-n", "--config", value, check=False)
    console = result.stdout + result.stderr
    assert result.returncode != 0 and line in console, console[-2000:]
    assert not (tmp_path / "resources").exists()
