"""Atomic writes: outputs appear complete under their final name, or not at all."""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path


_held = 0  # depth of `signals_held` blocks (signal handlers run in the main thread only)
_pending: int | None = None  # a signal that arrived inside one


def exit_on_signal(signum: int, frame: object) -> None:
    """Signal handler: raise ``SystemExit(128 + signum)`` so atomic writes clean up.

    Installed for SIGTERM (Slurm time limits, pre-emption) by the command line. Inside a
    `signals_held` block the exit waits for the block's end.
    """
    global _pending
    if _held:
        _pending = signum
        return
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold back `exit_on_signal` until the end of a short block that must not be cut in two.

    ``ThreadPoolExecutor.submit`` is one: it may start a worker thread, and an exception
    raised inside ``Thread.start`` leaves that worker running a task while ``shutdown``
    does not join it, so it can write into a temporary output after its removal.
    """
    global _held, _pending
    _held += 1
    try:
        yield
    finally:
        _held -= 1
        if not _held and _pending is not None:
            signum, _pending = _pending, None
            raise SystemExit(128 + signum)


class OutputError(OSError):
    """Writing an output failed (disk full, permission, ...); no partial output is left."""


def _remove(path: Path) -> None:
    """Remove a file or a directory tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def _remove_stale_temporaries(final: Path) -> None:
    """Remove temporaries of earlier writers of `final` that were killed (SIGKILL, OOM, node loss).

    Only one job writes a given output at a time (Snakemake locks its outputs), so any
    temporary of the same output still present belongs to a dead writer.
    """
    for stale in final.parent.glob(f".{glob.escape(final.name)}.tmp-*"):
        _remove(stale)


def _new_temporary(final: Path) -> Path:
    """An unused temporary name beside `final` (``.NAME.tmp-XXXXXXXX``); nothing is created."""
    while True:
        tmp = final.parent / f".{final.name}.tmp-{secrets.token_hex(4)}"
        if not (tmp.exists() or tmp.is_symlink()):
            return tmp


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it to `path` when the block succeeds.

    Parameters
    ----------
    path : str or PathLike
        Final output path (a file, or a directory such as a Zarr store).
    directory : bool
        Create the temporary path as an empty directory instead of leaving it absent.

    Yields
    ------
    Path
        Temporary path in the same folder (same file system, so the rename is atomic).
        Temporaries that killed writers of the same output left behind are removed first.
        Folders made for the output are removed again, if still empty, when the block fails.

    Raises
    ------
    OutputError
        If writing fails with an OS error (for example a full disk); the temporary
        output is removed and the message names the final output.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(folder / "a.txt") as tmp:
    ...     _ = tmp.write_text("hello")
    >>> (folder / "a.txt").read_text()
    'hello'
    """
    final = Path(path)
    created = _missing_folders(final.parent)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(final)
    tmp = _new_temporary(final)
    if directory:
        tmp.mkdir()  # mode 0777 less the umask, like any other output (mkdtemp gives 0700)
    try:
        yield tmp
        _remove(final)
        os.replace(tmp, final)
    except OSError as err:
        _remove(tmp)
        _remove_empty(created)
        raise OutputError(f"could not write {final}: {err.strerror or err}") from err
    except BaseException:
        _remove(tmp)
        _remove_empty(created)
        raise


def _missing_folders(folder: Path) -> list[Path]:
    """`folder` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not (folder.exists() or folder.is_symlink()) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders that a failed writer made for its output, deepest first, as long as
    they are empty: a failure leaves no empty output folder behind, and a folder that another
    writer has put something into in the meantime stays."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `path` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
