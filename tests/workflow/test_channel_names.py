"""``ingest.channel`` by name through the Snakefile: a folder of an ND2 and a CZI file (the
vendor samples of tests/data/vendor) whose channels are named differently and ordered
differently; one config names the wanted channel in each, and every rule that reads the image
gets that position's own number. A name no position has stops the run before any job."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from snakefile_runner import require_spheroseg

pytestmark = [pytest.mark.workflow]

DATA = Path(__file__).resolve().parents[1] / "data" / "vendor"
ND2, CZI = DATA / "cluster.nd2", DATA / "CD_s_1_t_3_c_2_z_5.czi"
# ND2: 0 '5-FAM/pH 9.0', 1 'FM 4-64/2% CHAPS'; CZI: 0 'LED555', 1 'LED470' (test_vendor.py
# reads them with nd2 and from the CZI's XML).


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A.nd2 and B.czi in an experiment folder (skips without the vendor readers)."""
    require_spheroseg()
    from test_vendor import require_reader

    require_reader(".nd2")
    require_reader(".czi")
    experiment = tmp_path / "experiment"
    experiment.mkdir()
    shutil.copy(ND2, experiment / "A.nd2")
    shutil.copy(CZI, experiment / "B.czi")
    return experiment


def _dry_run(run_snakemake, workdir: Path, channel: object, *args: str, check: bool = True):
    """`snakemake -n -p` over the folder with ingest.channel = `channel` (a config file)."""
    config = workdir / "channel.yaml"
    config.write_text(yaml.safe_dump({"experiment": str(workdir / "experiment"), "results": "results",
                                      "ingest": {"channel": channel}}))
    return run_snakemake(workdir, "--configfile", config, "-n", "-p", *args, check=check)


def _channels(output: str) -> dict[tuple[str, str], str]:
    """(command, position folder) -> its --channel, from the shell commands a dry run prints."""
    found = {}
    for line in output.splitlines():
        verb = re.search(r"spheroseg (predict|measure|report position) ", line)
        position = re.search(r"results/experiment/([AB])/", line)
        if verb and position:
            found[verb.group(1), position.group(1)] = re.search(r" --channel (\S+)", line).group(1)
    return found


def test_one_name_per_microscope_chooses_each_positions_channel(folder, run_snakemake, tmp_path):
    result = _dry_run(run_snakemake, tmp_path, ["FM 4-64/2% CHAPS", "LED555"])
    channels = _channels(result.stdout)
    assert channels == {(verb, "A"): "1" for verb in ("predict", "measure", "report position")} | {
        (verb, "B"): "0" for verb in ("predict", "measure", "report position")}, result.stdout[-3000:]
    note = next(line for line in result.stderr.splitlines() if "several channels" in line)
    assert "'A' (2: 0 '5-FAM/pH 9.0', 1 'FM 4-64/2% CHAPS' segmented)" in note
    assert "'B' (2: 0 'LED555' segmented, 1 'LED470')" in note
    # The same number as a name would be refused: --config turns '1' into a number.
    numbered = run_snakemake(tmp_path, "--configfile", tmp_path / "channel.yaml", "--config",
                             "ingest={channel: 1}", "-n", "-p")
    assert set(_channels(numbered.stdout).values()) == {"1"}


def test_the_record_says_which_channel_each_position_segments(folder, run_snakemake, tmp_path):
    """experiment.json is written when jobs start: one real (cheap) job, the ingest of B."""
    config = tmp_path / "channel.yaml"
    config.write_text(yaml.safe_dump({"experiment": str(folder), "results": "results",
                                      "ingest": {"channel": "led470"}}))
    # 'led470' is not a channel of A: refused before any job, naming A's file and channels.
    refused = run_snakemake(tmp_path, "--configfile", config, "-n", check=False)
    assert refused.returncode != 0
    assert ("ingest.channel must name a channel of position 'A' (0 '5-FAM/pH 9.0', 1 'FM 4-64/2% CHAPS'), "
            f"got 'led470' (in {folder / 'A.nd2'})") in refused.stdout + refused.stderr
    assert not (tmp_path / "results").exists()
    config.write_text(yaml.safe_dump({"experiment": str(folder), "results": "results",
                                      "ingest": {"channel": ["FM 4-64/2% CHAPS", "led470"]}}))
    run_snakemake(tmp_path, "--configfile", config, "--cores", "1",
                  "results/experiment/B/image.ome.zarr")
    positions = json.loads((tmp_path / "results" / "experiment" / "experiment.json").read_text())["positions"]
    assert (positions["A"]["channel"], positions["B"]["channel"]) == (1, 1)
