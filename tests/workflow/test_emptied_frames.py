"""Nothing vanishes silently: frames the size filter emptied are flagged and named on the console."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

DEMO = {"folder": "resources/demo", "positions": {"pos0": 1, "pos1": 1}, "timepoints": 2,
        "size": [128, 128], "seed": 0, "pixel_size_um": 2.0, "time_interval_s": 3600,
        "artefact": None}


def test_a_size_filter_that_removes_everything_is_flagged_and_listed(tmp_path, run_snakemake):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"demo": DEMO, "segment": {"min_area_um2": 1e8}}))
    # The tables and the end-of-run summary only: the report's plots are not looked at here.
    result = run_snakemake(tmp_path, "results/demo/metrics.csv", "results/demo/qc.csv", "--cores", "2",
                           "--configfile", str(config))
    metrics = pd.read_csv(tmp_path / "results" / "demo" / "metrics.csv")
    assert metrics.empty  # every body is below 1e8 um2
    qc = pd.read_csv(tmp_path / "results" / "demo" / "qc.csv")
    emptied = qc[qc["flag"] == "no_objects"]
    assert sorted(zip(emptied["position"], emptied["timepoint"])) == [
        ("pos0", 0), ("pos0", 1), ("pos1", 0), ("pos1", 1)]
    assert (emptied["value"] > 1000).all() and (emptied["limit"] == 1e8).all()
    console = [line for line in result.stderr.splitlines() if line.startswith("spheroseg: position")]
    assert [line.split(":")[1].strip() for line in console] == ["position 'pos0'", "position 'pos1'"]
    assert all("no object left in 2 frame(s) (t0, t1)" in line and "segment.min_area_um2" in line
               for line in console)
