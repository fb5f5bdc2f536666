"""Run a command and measure it: wall seconds, and the peak resident memory of its whole
process tree (the command and every worker process it starts), sampled from /proc.

``ru_maxrss`` from ``wait4`` is the largest single process of the tree, not their sum, so a
job with worker processes needs the sampled tree total. Imported by the benchmark scripts.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


def _tree_rss(root: int) -> int:
    """Resident bytes of process `root` and all its descendants (0 if gone)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            statm = (entry / "statm").read_text().split()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
        rss[int(entry.name)] = int(statm[1]) * PAGE
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def run_measured(command: list[str], *, env: dict[str, str] | None = None,
                 log: Path | None = None, interval: float = 0.1) -> dict[str, float]:
    """Run `command`; return ``seconds``, ``rss`` (its own peak), ``tree_rss`` (peak sum) and
    ``cpu`` (its user + system CPU seconds, from ``wait4``).

    Raises
    ------
    RuntimeError
        If the command fails.
    """
    peak = [0]
    done = threading.Event()
    with open(log or os.devnull, "ab") as sink:
        start = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=sink)

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _tree_rss(process.pid))
                done.wait(interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        done.set()
        sampler.join()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"command failed: {' '.join(command)} (log: {log})")
    return {"seconds": seconds, "rss": usage.ru_maxrss * 1024, "tree_rss": peak[0],
            "cpu": usage.ru_utime + usage.ru_stime}
