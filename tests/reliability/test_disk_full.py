"""A results folder on a tiny tmpfs: the failing job says which output did not fit, nothing
that looks complete is left, and the same command completes once there is space again.

Runs with ``--keep-incomplete`` so that Snakemake does not tidy up for us: what is left
on disk is exactly what spheroseg wrote.
"""

from __future__ import annotations

import filecmp
import json
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

OUTPUTS = ("image.ome.zarr", "tiles.json", "tiles.zarr", "probabilities.ome.zarr",
           "image.ome.zarr/labels/segmentation", "image.ome.zarr/labels/zarr.json", "segment.json",
           "contours.geojson", "metrics", "metrics.csv")
LABELS = "labels/"  # inside image.ome.zarr, written later by segment: compared on their own
ENOSPC = "No space left on device"


def _kib(path: Path, *, skip: str | None = None) -> int:
    """Disk usage of a file or folder in KiB (4 KiB pages, like tmpfs counts), without the
    folder's subfolder `skip`."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()
                                           and not (skip and p.relative_to(path).as_posix().startswith(skip))]
    return sum(-(-p.stat().st_size // 4096) * 4 for p in files)


@pytest.fixture
def tmpfs(tmp_path):
    """Mount an empty tmpfs at tmp_path/results (skip where mounting is not permitted)."""
    target = tmp_path / "results"
    target.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(target)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here (needs root): {mounted.stderr.strip()}")
    yield target
    subprocess.run(["umount", "-l", str(target)], capture_output=True)


def _resize(target: Path, kib: int) -> None:
    subprocess.run(["mount", "-o", f"remount,size={kib}k", str(target)], check=True, capture_output=True)


def _differing_outputs(workdir: Path, baseline: Path, position: str) -> list[str]:
    """Final-named outputs of the position that are not identical to the uninterrupted run's."""
    bad = []
    for name in OUTPUTS:
        ours, theirs = workdir / "results/demo" / position / name, baseline / "results/demo" / position / name
        if not ours.exists():
            continue
        if name == "tiles.zarr":  # temporary, so the reference has none: it must be a finished store
            same = "spheroseg" in json.loads((ours / "zarr.json").read_text()).get("attributes", {})
        elif ours.is_file():
            same = theirs.is_file() and filecmp.cmp(ours, theirs, shallow=False)
        else:
            same = _same_tree(ours, theirs, skip=LABELS if name == "image.ome.zarr" else None)
        bad += [] if same else [name]
    return bad


def _same_tree(ours: Path, theirs: Path, *, skip: str | None = None) -> bool:
    """Same files with the same bytes (Snakemake's timestamp markers and subfolder `skip` aside)."""
    def files(root: Path) -> dict[str, Path]:
        return {p.relative_to(root).as_posix(): p for p in root.rglob("*")
                if p.is_file() and p.name != ".snakemake_timestamp"
                and not (skip and p.relative_to(root).as_posix().startswith(skip))}
    mine, reference = files(ours), files(theirs) if theirs.is_dir() else {}
    return mine.keys() == reference.keys() and all(filecmp.cmp(mine[k], reference[k], shallow=False) for k in mine)


def _fail_for_lack_of_space(workdir: Path, config: list[str], faults, baseline: Path) -> list[str]:
    """Run on the too-small tmpfs; check the failure is clean; return the outputs named in
    the jobs' errors (empty if Snakemake itself hit the full disk first, e.g. writing a
    benchmark file, and said so)."""
    position = faults.POSITION
    failed = faults.run(workdir, config, "--keep-incomplete", check=False)
    assert failed.returncode != 0, "the workflow must fail on a full disk"
    logs = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in (workdir / "results").rglob("*.log"))
    lines = [line for line in logs.splitlines() if ENOSPC in line]
    named = [name for name in OUTPUTS if any(f"could not write results/demo/{position}/{name}:" in line for line in lines)]
    if lines:
        assert named, f"the error must name the output that did not fit, got {lines}"
    else:
        assert ENOSPC in failed.stdout + failed.stderr, f"nobody reported the full disk:\n{failed.stderr[-3000:]}"
    assert faults.leftovers(workdir) == [], "temporary outputs must be removed when a write fails"
    assert _differing_outputs(workdir, baseline, position) == [], "an output under its final name is partial"
    return named


def test_full_disk_fails_cleanly_and_the_next_run_completes(baseline, faults, tmpfs):
    workdir = tmpfs.parent
    config = faults.write_config(workdir)
    first = _fail_for_lack_of_space(workdir, config, faults, baseline)  # 64 KiB: not even the image fits
    assert first == ["image.ome.zarr"]
    # room for the image but not for what follows: a later stage hits the full disk
    _resize(tmpfs, _kib(baseline / "results/demo" / faults.POSITION / "image.ome.zarr", skip=LABELS) + 48)
    later = _fail_for_lack_of_space(workdir, config, faults, baseline)
    assert "image.ome.zarr" not in later and (workdir / "results/demo" / faults.POSITION / "image.ome.zarr").is_dir()
    _resize(tmpfs, 64 * 1024)
    faults.run(workdir, config, "--rerun-incomplete")
    faults.assert_same_csvs(workdir, baseline)
