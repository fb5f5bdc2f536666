"""The error lines of failed jobs, for the console.

Every rule sends its command's stderr to a log file, so Snakemake's console shows only
``Error in rule segment`` and the log's path. The workflow's ``onerror`` handler calls
`job_errors` to print the one line that says what went wrong (``spheroseg segment: error:
...``, or the last line of a traceback) for each log written during the run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

ERROR_LINE = re.compile(r"^spheroseg [\w-]+(?: [\w-]+)?: error: ")
TRACEBACK = "Traceback (most recent call last):"


def error_line(text: str) -> str | None:
    """The error of one job log: the CLI's ``error:`` line, else a traceback's last line.

    Examples
    --------
    >>> error_line("spheroseg ingest: wrote 3 frames\\nspheroseg ingest: error: bad file\\n")
    'spheroseg ingest: error: bad file'
    >>> error_line("all fine\\n") is None
    True
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if ERROR_LINE.match(line)]
    if errors:
        return errors[-1]
    if any(line == TRACEBACK for line in lines):
        return lines[-1]
    return None


def job_errors(folders: Iterable[str | os.PathLike[str]], *, since: float) -> list[str]:
    """``log path: error line`` for each ``*.log`` below `folders` modified after `since`.

    Parameters
    ----------
    folders : iterable of str or PathLike
        Folders searched recursively (missing ones are skipped).
    since : float
        Epoch seconds; older logs belong to earlier runs.

    Returns
    -------
    list of str
        Sorted by log path.
    """
    found = []
    for folder in folders:
        for path in sorted(Path(folder).rglob("*.log")) if Path(folder).is_dir() else []:
            try:
                if path.stat().st_mtime < since:
                    continue
                line = error_line(path.read_text(encoding="utf-8", errors="replace"))
            except OSError:
                continue
            if line is not None:
                found.append(f"{path}: {line}")
    return sorted(found)
