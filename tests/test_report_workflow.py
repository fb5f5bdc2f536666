"""The demo with an injected artefact, through the Snakefile: report files, QC and HTML report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from snakefile_runner import require_model, run_snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

ARTEFACT = ("pos0", 5)


@pytest.fixture(scope="module")
def artefact_run(tmp_path_factory) -> Path:
    """The demo with an artefact at pos0 frame 5, run once, plus its HTML report."""
    workdir = tmp_path_factory.mktemp("report_workflow") / "run"
    config = ["--config", f"demo={{artefact: \"{ARTEFACT[0]}:{ARTEFACT[1]}\"}}", f"model={require_model()}"]
    run_snakemake(workdir, *config, "--cores", "2", timeout=1500)
    run_snakemake(workdir, *config, "--report", workdir / "report.html", timeout=1500)
    return workdir


def test_qc_flags_the_injected_artefact(artefact_run):
    table = pd.read_csv(artefact_run / "results" / "demo" / "qc.csv")
    jumps = table[(table["flag"] == "area_jump") & (table["position"] == ARTEFACT[0])]
    assert ARTEFACT[1] in set(jumps["timepoint"]), table.to_string()
    assert jumps.loc[jumps["timepoint"] == ARTEFACT[1], "value"].iloc[0] > 0.2


@pytest.mark.parametrize("position", ["pos0", "pos1"])
def test_position_figures_are_valid_images(artefact_run, position):
    folder = artefact_run / "results" / "demo" / position / "report"
    for name, kind in (("metrics_over_time.png", "PNG"), ("montage.png", "PNG"), ("overlay.gif", "GIF")):
        with Image.open(folder / name) as image:
            image.verify()
            assert image.format == kind and min(image.size) >= 64
    with Image.open(folder / "overlay.gif") as image:
        assert image.n_frames == 8 and max(image.size) == 320
    assert (folder / "metrics_over_time.svg").stat().st_size > 1000


def test_html_report_holds_figures_qc_and_model_card(artefact_run):
    text = (artefact_run / "report.html").read_text(encoding="utf-8")
    for name in ("metrics_over_time.png", "montage.png", "overlay.html", "qc.csv", "qc.html",
                 "comparison.png", "run_parameters.html"):
        assert name in text, name
    assert "Quality control" in text and "Positions" in text
    assert "Each position went through these rules" in text  # the top page (workflow/report/workflow.rst)
