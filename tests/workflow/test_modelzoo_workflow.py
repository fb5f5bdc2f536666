"""`model:` naming a bioimage.io package: imported by the workflow, same results as the
TorchScript file it was exported from; an unusable package stops the DAG before any job."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from spheroseg import ngff

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.workflow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
POSITIONS = list(yaml.safe_load((REPO / "config" / "config.yaml").read_text())["demo"]["positions"])


@pytest.fixture(scope="module")
def unet(tmp_path_factory):
    """A U-Net with percentile normalisation: the shipped default's robust normalisation has no
    bioimage.io equivalent (tests/modelzoo)."""
    from spheroseg.cli import main

    output = tmp_path_factory.mktemp("unet") / "default.pt"
    assert main(["train", "--synthetic", "4", "--synthetic-size", "64", "--patch-size", "64", "--batch-size", "2",
                 "--epochs", "1", "--steps-per-epoch", "2", "--pixel-size-um", "2.0", "--device", "cpu",
                 "--no-progress", "--output", str(output)]) == 0
    return output


@pytest.fixture(scope="module")
def package(tmp_path_factory, unet):
    pytest.importorskip("bioimageio.spec")
    from spheroseg.modelzoo.export import export_bioimageio

    output = tmp_path_factory.mktemp("package") / "default.zip"
    export_bioimageio(unet, output, test=False)  # tested in tests/modelzoo
    return output


def test_exported_package_as_model_gives_the_same_probabilities(demo_copy, run_snakemake, unet, package, tmp_path):
    direct_results, results = tmp_path / "direct", tmp_path / "results"
    # Up to the metrics tables: the report's figures are the shared demo run's business.
    for model, folder in ((unet, direct_results), (package, results)):
        run_snakemake(demo_copy, folder / "demo" / "metrics.csv", "--cores", "2", "--config", f"model={model}",
                      f"results={folder}")
    imported = sorted((demo_copy / "models" / "bioimageio").glob("default.*.pt"))
    assert len(imported) == 1
    card = json.loads(imported[0].with_suffix(".json").read_text())
    assert card["bioimageio"]["package"]["file"] == "default.zip"
    for position in POSITIONS:
        direct = ngff.open_array(direct_results / "demo" / position / "probabilities.ome.zarr")
        via_zoo = ngff.open_array(results / "demo" / position / "probabilities.ome.zarr")
        difference = np.abs(np.asarray(via_zoo[:], np.float32) - np.asarray(direct[:], np.float32))
        assert float(difference.max()) <= 1e-5
    assert (results / "demo" / "metrics.csv").read_text() == (direct_results / "demo" / "metrics.csv").read_text()
    again = run_snakemake(demo_copy, results / "demo" / "metrics.csv", "-n", "--config", f"model={package}",
                          f"results={results}")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_package_with_pickled_weights_stops_the_dag_before_any_job(demo_run, run_snakemake, package, tmp_path):
    folder = tmp_path / "package"
    with zipfile.ZipFile(package) as archive:
        archive.extractall(folder)
    rdf = yaml.safe_load((folder / "rdf.yaml").read_text())
    rdf["weights"] = {"pytorch_state_dict": {"source": "default.pt", "pytorch_version": "2.4",
                                             "architecture": {"source": "arch.py", "callable": "Net"}}}
    (folder / "arch.py").write_text("raise SystemExit('never imported')\n")
    (folder / "rdf.yaml").write_text(json.dumps(rdf))
    results = tmp_path / "results"
    failed = run_snakemake(demo_run, "-n", "--config", f"model={folder / 'rdf.yaml'}", f"results={results}",
                           check=False)
    assert failed.returncode != 0
    message = failed.stdout + failed.stderr
    assert "pytorch_state_dict weights are pickled" in message and "(config key 'model')" in message
    assert not results.exists()
