"""kill -9 of the whole workflow mid-write, then unlock + --rerun-incomplete: same CSVs.

The kill is triggered by the stage's temporary output (``.NAME.tmp-XXXX`` from
spheroseg.atomic) holding its first chunk (predict) or its first file (ingest, see STAGES),
so the job is stopped half-way through writing, not before it starts or after it ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

# stage -> (glob that means "half-written", final output name); "c*": a first chunk, whether
# chunk keys are nested ("c/0/...") or side by side ("c.0.0...", spheroseg.ngff.CHUNK_KEY_ENCODING).
# Ingest of the tiny test image keeps a chunk in its temporary store for about 2 ms before the
# rename (measured), too short for a poll to see reliably on a quiet machine; any file in the
# temporary store (its metadata, written first, about 9 ms before the rename) means half-written.
STAGES = {
    "ingest": ("results/demo/*/.image.ome.zarr.tmp-*/*", "image.ome.zarr"),
    "predict": ("results/demo/*/.tiles.zarr.tmp-*/c*", "tiles.zarr"),
}


@dataclass
class Resumed:
    """A run killed during `stage` and then resumed."""

    stage: str
    workdir: Path
    final_existed_at_kill: bool
    leftovers_at_kill: list[str]


@pytest.fixture(scope="module", params=list(STAGES), ids=[f"kill-during-{s}" for s in STAGES])
def resumed(request, faults, tmp_path_factory) -> Resumed:
    stage = request.param
    trigger, final_name = STAGES[stage]
    for attempt in range(3):  # a very fast machine may finish a tiny stage between two polls
        workdir = tmp_path_factory.mktemp(f"kill-{stage}")
        config = faults.write_config(workdir)
        try:
            faults.run_until_killed(workdir, config, trigger)
            break
        except faults.TriggerMissed:
            if attempt == 2:
                raise
    final = workdir / "results" / "demo" / faults.POSITION / final_name
    killed = Resumed(stage, workdir, final.exists(), faults.leftovers(workdir))
    faults.resume(workdir, config)
    return killed


def test_half_written_output_never_has_its_final_name(resumed):
    assert resumed.leftovers_at_kill, "the kill must hit while the temporary output exists"
    assert not resumed.final_existed_at_kill, f"{resumed.stage}: a killed job left an output under its final name"


def test_rerun_gives_byte_identical_csvs(resumed, baseline, faults):
    # Killed during ingest, the resumed run computes every stage anew: it is also the second
    # clean run that shows two runs of the same config give the same CSVs and contours.
    faults.assert_same_csvs(resumed.workdir, baseline)
    contours = f"results/demo/{faults.POSITION}/contours.geojson"
    assert (resumed.workdir / contours).read_bytes() == (baseline / contours).read_bytes()


def test_rerun_removes_temporary_outputs_of_the_killed_job(resumed, faults):
    # kill -9 gives atomic_path no chance to clean up; the next write of the same output
    # must, or every pre-emption of a long job leaves a partial store behind for good.
    assert faults.leftovers(resumed.workdir) == []

