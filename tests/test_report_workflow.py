"""The demo with an injected artefact, through the Snakefile: report files, QC and HTML report."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

pytestmark = pytest.mark.workflow

REPO = Path(__file__).resolve().parents[1]
ARTEFACT = ("pos0", 5)


def _snakemake(workdir: Path, model: Path, *args: str) -> str:
    """Run the repository's Snakefile (its `rule all` includes the report) in `workdir`."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
               str(workdir), "--config", f"demo={{artefact: \"{ARTEFACT[0]}:{ARTEFACT[1]}\"}}",
               f"model={model}", *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1500)
    if result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def artefact_run(tmp_path_factory) -> Path:
    """The demo with an artefact at pos0 frame 5, run once, plus its HTML report."""
    if shutil.which("spheroseg", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("the spheroseg command is not installed next to this Python")
    import yaml

    # SPHEROSEG_TEST_MODEL: another TorchScript model (with card) for this test
    default = REPO / yaml.safe_load((REPO / "config" / "config.yaml").read_text())["model"]
    model = Path(os.environ.get("SPHEROSEG_TEST_MODEL", default)).resolve()
    if not model.is_file():
        pytest.skip(f"the demo model {model} is not in the repository yet")
    workdir = tmp_path_factory.mktemp("report_workflow") / "run"
    _snakemake(workdir, model, "--cores", "2")
    _snakemake(workdir, model, "--report", str(workdir / "report.html"))
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
