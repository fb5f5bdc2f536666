"""Fuzz test (issue 6): 1,000 mutated TIFF files fed to ingest.

Every mutated file must end in either a correct ingest (the store equals what tifffile
reads from the same file, axes mapped independently with ``tifffile.transpose_axes``) or a
clear error (ValueError/TypeError/OSError, one line, naming the file) with no output and no
temporary folder left behind; each within a time bound, and no worker interpreter may crash.
Files are tiny and run in a pool of two spawned worker processes, so a crash in C code is
seen as a broken pool instead of taking pytest down.
"""

from __future__ import annotations

import resource
import shutil
import signal
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pytest
import tifffile

pytestmark = pytest.mark.slow

N_FILES = 1000
PER_FILE_LIMIT_S = 10.0
BATCH = 25
MEMORY_LIMIT = 4 * 2**30  # a bogus huge plane then fails cleanly instead of swapping


def _base_files(folder: Path) -> list[Path]:
    """Small valid TIFFs of the kinds users have (ImageJ, OME, plain, compressed/tiled)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    data = rng.integers(0, 4096, (3, 2, 16, 16)).astype("uint16")
    paths = [folder / "imagej.tif", folder / "ome.ome.tif", folder / "plain.tif",
             folder / "tiled_zlib.tif"]
    tifffile.imwrite(paths[0], data, imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "TCYX", "unit": "um", "finterval": 60})
    tifffile.imwrite(paths[1], data, ome=True, photometric="minisblack", metadata={
        "axes": "TCYX", "PhysicalSizeX": 0.65, "PhysicalSizeY": 0.65, "TimeIncrement": 300})
    tifffile.imwrite(paths[2], data[:, 0].astype("uint8"), photometric="minisblack",
                     resolution=(20000, 20000), resolutionunit="CENTIMETER")
    tifffile.imwrite(paths[3], data[:, 1], photometric="minisblack", tile=(16, 16),
                     compression="zlib")
    return paths


def _tag_regions(path: Path) -> tuple[list[int], list[tuple[int, int]]]:
    """File offsets of every IFD entry, and (offset, length) of text tag values."""
    entries, texts = [], []
    with tifffile.TiffFile(path) as tif:
        for page in tif.pages:
            for tag in page.tags:
                entries.append(tag.offset)
                if tag.dtype == 2 and tag.count > 8:
                    texts.append((tag.valueoffset, tag.count))
    return entries, texts


def _flip_bits(data: bytes, rng: np.random.Generator, entries: list[int]) -> bytes:
    """Flip 1 to 8 bits, half of them inside IFD entries."""
    buffer = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        if rng.random() < 0.5 and entries:
            position = int(rng.choice(entries)) + int(rng.integers(0, 12))
        else:
            position = int(rng.integers(0, len(buffer)))
        buffer[min(position, len(buffer) - 1)] ^= 1 << int(rng.integers(0, 8))
    return bytes(buffer)


def _truncate(data: bytes, rng: np.random.Generator) -> bytes:
    """Cut the file at a random length (possibly 0)."""
    return data[: int(rng.integers(0, len(data)))]


BOGUS_VALUES = (0, 1, 2, 3, 7, 255, 65535, 2**16 + 1, 2**31 - 1, 2**32 - 1)


def _bogus_tag(data: bytes, rng: np.random.Generator, entries: list[int],
               texts: list[tuple[int, int]]) -> bytes:
    """Overwrite the type, count, value or code of a tag, or garble a text tag."""
    buffer = bytearray(data)
    if texts and rng.random() < 0.25:
        offset, length = texts[int(rng.integers(0, len(texts)))]
        start = offset + int(rng.integers(0, length))
        junk = rng.choice(list(b"0123456789=-.\n{}<>\"axesTCZYX frames"), size=int(
            rng.integers(1, 12)))
        buffer[start:start + len(junk)] = bytes(junk.tolist())
        return bytes(buffer[: len(data)])
    entry = int(rng.choice(entries))
    field = rng.choice(["code", "type", "count", "value"])
    if field == "code":
        code = int(rng.choice([256, 257, 258, 259, 262, 273, 277, 278, 279, 322, 323, 324,
                               325, 339, 270, int(rng.integers(0, 65536))]))
        buffer[entry:entry + 2] = code.to_bytes(2, "little")
    elif field == "type":
        buffer[entry + 2:entry + 4] = int(rng.integers(0, 20)).to_bytes(2, "little")
    else:
        value = int(rng.choice(BOGUS_VALUES + (len(data) - 1, len(data) + 8)))
        start = entry + (4 if field == "count" else 8)
        buffer[start:start + 4] = value.to_bytes(4, "little")
    return bytes(buffer)


def make_corpus(folder: Path, count: int) -> list[Path]:
    """Write `count` mutated files (a fixed seed, so failures are reproducible)."""
    rng = np.random.default_rng(2026)
    bases = _base_files(folder / "bases")
    regions = [_tag_regions(path) for path in bases]
    corpus = []
    for number in range(count):
        base = number % len(bases)
        data = bases[base].read_bytes()
        entries, texts = regions[base]
        kind = ("flip", "truncate", "tag")[number // len(bases) % 3]
        if kind == "flip":
            mutated = _flip_bits(data, rng, entries)
        elif kind == "truncate":
            mutated = _truncate(data, rng)
        else:
            mutated = _bogus_tag(data, rng, entries, texts)
        path = folder / "corpus" / f"{number:04d}_{kind}_{bases[base].stem}.tif"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(mutated)
        corpus.append(path)
    return corpus


def _reference(path: Path) -> np.ndarray:
    """What tifffile itself reads, mapped to (T, C, Z, Y, X) independently of spheroseg."""
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        data, axes = series.asarray(), series.axes
    keep = [i for i, a in enumerate(axes) if data.shape[i] > 1 or a in "YX"]
    data = data.reshape([data.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep).replace("I", "T").replace("Q", "T").replace("S", "C")
    return tifffile.transpose_axes(data, axes, asaxes="TCZYX")


class _Timeout(Exception):
    """Raised by the alarm when one file takes too long."""


def _alarm(signum, frame):
    raise _Timeout


def _check_one(path: Path, out_root: Path) -> tuple[str, str, float]:
    """Ingest one file; classify the outcome as ok / error / FAIL with a reason."""
    import zarr

    from spheroseg.ingest import ingest_position

    out_dir = out_root / path.stem
    out = out_dir / "image.ome.zarr"
    start = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, PER_FILE_LIMIT_S)
    try:
        ingest_position([path], out, workers=1)
    except _Timeout:
        return "FAIL", "timeout", time.perf_counter() - start
    except (ValueError, TypeError, OSError) as err:
        elapsed = time.perf_counter() - start
        signal.setitimer(signal.ITIMER_REAL, 0)
        message = str(err)
        leftovers = list(out_dir.iterdir()) if out_dir.exists() else []
        if "\n" in message or path.name not in message:
            return "FAIL", f"unclear error {message!r}", elapsed
        if leftovers:
            return "FAIL", f"left {leftovers} after {message!r}", elapsed
        return "error", type(err).__name__, elapsed
    except Exception as err:  # anything else escaping ingest is a bug to report
        return "FAIL", f"unexpected {type(err).__name__}: {err}", time.perf_counter() - start
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    elapsed = time.perf_counter() - start
    try:
        reference = _reference(path)
    except Exception as err:  # ingest read it, so tifffile must too
        return "FAIL", f"ingested but tifffile fails: {type(err).__name__}", elapsed
    stored = zarr.open_array(store=str(out / "0"), mode="r")[...]
    if stored.ndim == 4:
        reference = reference[:, :, 0]
    if stored.dtype != reference.dtype.newbyteorder("<") or not np.array_equal(
        stored, reference
    ):
        return "FAIL", f"ingested {stored.shape} differs from tifffile {reference.shape}", elapsed
    shutil.rmtree(out_dir)
    return "ok", "", elapsed


def check_batch(paths: list[Path]) -> list[tuple[str, str, str, float]]:
    """Worker entry: check each file with a per-file alarm and an address-space limit."""
    import logging

    logging.getLogger("tifffile").setLevel(logging.CRITICAL)
    logging.getLogger("spheroseg").setLevel(logging.CRITICAL)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or hard > MEMORY_LIMIT:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, hard))
    signal.signal(signal.SIGALRM, _alarm)
    out_root = Path(tempfile.mkdtemp(prefix="fuzz-out-"))
    try:
        return [(path.name, *_check_one(path, out_root)) for path in paths]
    finally:
        shutil.rmtree(out_root, ignore_errors=True)


def test_mutators_change_files(tmp_path):
    corpus = make_corpus(tmp_path, 12)
    bases = {p.stem: p.read_bytes() for p in (tmp_path / "bases").iterdir()}
    changed = [p.read_bytes() != bases[p.stem.split("_", 2)[2]] for p in corpus]
    assert sum(changed) >= 11


def test_fuzzed_tiffs_end_in_ingest_or_clear_error(tmp_path):
    corpus = make_corpus(tmp_path, N_FILES)
    batches = [corpus[i:i + BATCH] for i in range(0, len(corpus), BATCH)]
    results, crashed = [], []
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(check_batch, batch): batch for batch in batches}
        for future, batch in futures.items():
            try:
                results.extend(future.result(timeout=PER_FILE_LIMIT_S * BATCH + 60))
            except BrokenProcessPool:
                crashed.append(batch[0].name)
                break
    outcomes = Counter(result[1] for result in results)
    failures = [result for result in results if result[1] == "FAIL"]
    slowest = max(result[3] for result in results)
    print(f"fuzz: {len(results)} files, {dict(outcomes)}, slowest {slowest:.2f} s")
    assert not crashed, f"a worker interpreter crashed in the batch starting at {crashed}"
    assert not failures, f"{len(failures)} bad outcomes, first: {failures[:5]}"
    assert len(results) == N_FILES
    assert outcomes["ok"] > 0 and outcomes["error"] > 0
    assert slowest < PER_FILE_LIMIT_S
    assert not any(p.name.startswith(".") for p in tmp_path.rglob("*"))
