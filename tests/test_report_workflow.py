"""The report through the Snakefile: figures and HTML report of the shared demo run, and QC of
a small demo with an injected artefact."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image
from snakefile_runner import require_model, run_snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

ARTEFACT = ("pos0", 5)
# Small enough to be quick, long enough for the artefact frame (the shared demo has none).
ARTEFACT_DEMO = {"folder": "resources/demo", "positions": {"pos0": 1, "pos1": 1}, "timepoints": 6,
                 "size": [128, 128], "seed": 0, "pixel_size_um": 2.0, "time_interval_s": 3600,
                 "artefact": f"{ARTEFACT[0]}:{ARTEFACT[1]}"}


@pytest.fixture(scope="module")
def artefact_run(tmp_path_factory) -> Path:
    """The small demo with an artefact at pos0 frame 5, run up to its QC table."""
    workdir = tmp_path_factory.mktemp("report_workflow") / "run"
    workdir.mkdir()
    config = workdir / "artefact.yaml"
    config.write_text(yaml.safe_dump({"demo": ARTEFACT_DEMO, "model": str(require_model())}))
    run_snakemake(workdir, "--configfile", config, "--cores", "2", "results/demo/qc.csv", timeout=1500)
    return workdir


@pytest.fixture(scope="module")
def html_report(demo_run, tmp_path_factory) -> Path:
    """`snakemake --report` of the shared demo run, written outside the run's folder."""
    path = tmp_path_factory.mktemp("html_report") / "report.html"
    run_snakemake(demo_run, "--report", path, timeout=1500)
    return path


def test_qc_flags_the_injected_artefact(artefact_run):
    table = pd.read_csv(artefact_run / "results" / "demo" / "qc.csv")
    jumps = table[(table["flag"] == "area_jump") & (table["position"] == ARTEFACT[0])]
    assert ARTEFACT[1] in set(jumps["timepoint"]), table.to_string()
    assert jumps.loc[jumps["timepoint"] == ARTEFACT[1], "value"].iloc[0] > 0.2


@pytest.mark.parametrize("position", ["pos0", "pos1"])
def test_position_figures_are_valid_images(demo_run, position):
    folder = demo_run / "results" / "demo" / position / "report"
    for name, kind in (("metrics_over_time.png", "PNG"), ("montage.png", "PNG"), ("overlay.gif", "GIF")):
        with Image.open(folder / name) as image:
            image.verify()
            assert image.format == kind and min(image.size) >= 64
    with Image.open(folder / "overlay.gif") as image:
        assert image.n_frames == 8 and max(image.size) == 320
    assert (folder / "metrics_over_time.svg").stat().st_size > 1000


def test_html_report_holds_figures_qc_and_model_card(html_report):
    text = html_report.read_text(encoding="utf-8")
    for name in ("metrics_over_time.png", "montage.png", "overlay.html", "qc.csv", "qc.html",
                 "comparison.png", "run_parameters.html"):
        assert name in text, name
    assert "Quality control" in text and "Positions" in text
    assert "Each position went through these rules" in text  # the top page (workflow/report/workflow.rst)
    # the montage caption names the channel number the position's rule read (ingest.channel may be a name)
    assert re.search(r"raw frames \(channel(\s|\\n)+0\)", text)
