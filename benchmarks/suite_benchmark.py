"""Time the test suite and count the Snakemake runs it makes, for one or more checkouts side by side.

    nice -n 10 python benchmarks/suite_benchmark.py [--checkout LABEL=PATH ...] [--select EXPR ...]
        [--output benchmarks/suite_results.md]

For every selection (a ``pytest -m`` expression; ``all`` for the whole suite) and every
checkout, in that order, runs ``python -m pytest -q`` in the checkout with this Python and
writes one row: wall time, the load average before and after, pytest's summary line, and what
the Snakemake runs did. Checkouts that differ only in ``tests/`` and the pytest settings can
share this environment (its ``spheroseg`` command); the script does not check that.

Counting the Snakemake runs:

- *invocations*: every ``python -m snakemake`` / ``snakemake`` process the tests start, seen by a
  ``sitecustomize`` module put first on ``PYTHONPATH`` that appends the process's arguments to a
  file (Snakemake's own job processes, ``--mode``, are left out). Dry runs are counted apart.
- from Snakemake's logs (``.snakemake/log/*.snakemake.log``, written by every run that is not a
  dry run; identical copies, e.g. from a copied run folder, count once): runs that finished at
  least one job, runs that finished a ``predict`` job (the model inference: a pipeline run),
  and the finished jobs. Only logs under the run's ``--basetemp`` (and ``TMPDIR``, set there
  too) are seen.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECORDER = '''\
import os, sys
_argv = getattr(sys, "orig_argv", sys.argv)
_name = os.path.basename(_argv[1] if len(_argv) > 1 else "")
_record = os.environ.get("SPHEROSEG_COUNT_SNAKEMAKE")
if _record and (("-m" in _argv[:3] and "snakemake" in _argv[:4]) or _name == "snakemake"):
    with open(_record, "a", encoding="utf-8") as _file:
        _file.write(repr((os.environ.get("PYTEST_CURRENT_TEST", ""), _argv)) + "\\n")
'''
DRY = {"-n", "--dry-run", "--dryrun"}
FINISHED = re.compile(r"^Finished jobid: \d+ \(Rule: (\w+)\)", re.MULTILINE)


@dataclass
class Runs:
    """What the Snakemake runs of one pytest session did."""

    invocations: int = 0
    dry: int = 0
    logged: int = 0
    with_jobs: int = 0
    with_predict: int = 0
    jobs: Counter = field(default_factory=Counter)
    by_test: Counter = field(default_factory=Counter)  # test id (+ [dry]) -> Snakemake processes
    predict_by_folder: Counter = field(default_factory=Counter)  # basetemp folder -> runs with predict


def count_runs(argv_file: Path, base: Path) -> Runs:
    """Read the recorded invocations and every distinct Snakemake log under `base`."""
    lines = argv_file.read_text(encoding="utf-8").splitlines() if argv_file.exists() else []
    records = [eval(line, {}) for line in lines]  # noqa: S307 (our own repr of a tuple of str)
    records = [(test, argv) for test, argv in records if "--mode" not in argv]
    runs = Runs(invocations=len(records), dry=sum(bool(DRY & set(argv)) for _, argv in records))
    runs.by_test.update(test.rsplit(" ", 1)[0] + (" [dry]" if DRY & set(argv) else "") for test, argv in records)
    seen = set()
    for log in sorted(base.rglob(".snakemake/log/*.snakemake.log")):
        text = log.read_text(encoding="utf-8", errors="replace")
        digest = hashlib.sha256(text.encode()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        rules = FINISHED.findall(text)
        runs.logged += 1
        runs.with_jobs += bool(rules)
        runs.with_predict += "predict" in rules
        runs.jobs.update(rules)
        runs.predict_by_folder[log.relative_to(base).parts[0]] += "predict" in rules
    return runs


def summary_line(output: str) -> str:
    """pytest's last line that counts outcomes (``N passed, M skipped in Xs``)."""
    lines = [line.strip("= ") for line in output.splitlines() if re.search(r"\d+ (passed|failed|error)", line)]
    return lines[-1] if lines else "(no summary line: see the log)"


def run_suite(checkout: Path, select: str, scratch: Path, log_path: Path) -> dict:
    """Run the suite of `checkout` once; return the row of the table."""
    base, hook = scratch / "basetemp", scratch / "hook"
    for folder in (hook, scratch / "tmp"):
        folder.mkdir(parents=True)
    (hook / "sitecustomize.py").write_text(RECORDER, encoding="utf-8")
    argv_file = scratch / "snakemake-argv.txt"
    env = dict(os.environ, TMPDIR=str(scratch / "tmp"), SPHEROSEG_COUNT_SNAKEMAKE=str(argv_file),
               PYTHONPATH=os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")])))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--basetemp={base}"]
    command += [] if select == "all" else ["-m", select]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_before, start = os.getloadavg(), time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        result = subprocess.run(command, cwd=checkout, env=env, stdout=log, stderr=subprocess.STDOUT)
    wall = time.monotonic() - start
    runs = count_runs(argv_file, base)
    return {"select": select, "checkout": str(checkout), "started": started, "exit": result.returncode, "wall_s": round(wall, 1),
            "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
            "summary": summary_line(log_path.read_text(encoding="utf-8", errors="replace")),
            "invocations": runs.invocations, "dry": runs.dry, "logged": runs.logged, "with_jobs": runs.with_jobs,
            "with_predict": runs.with_predict, "jobs": sum(runs.jobs.values()), "by_rule": dict(runs.jobs),
            "runs_by_test": dict(runs.by_test.most_common()),
            "predict_runs_by_folder": {k: v for k, v in runs.predict_by_folder.most_common() if v}}


def markdown(rows: list[dict], labels: dict[str, str]) -> str:
    """The results as a Markdown table, with the details as JSON below it."""
    head = ("| selection | checkout | exit | wall (s) | load 1/5/15 min before | Snakemake processes (dry) | "
            "runs with jobs | runs with predict | jobs | pytest |\n|---|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(
        f"| {row['select']} | {labels[row['checkout']]} | {row['exit']} | {row['wall_s']} | "
        f"{' / '.join(map(str, row['load_before']))} | {row['invocations']} ({row['dry']}) | {row['with_jobs']} | "
        f"{row['with_predict']} | {row['jobs']} | {row['summary']} |\n" for row in rows)
    return head + body + "\n```json\n" + json.dumps(rows, indent=1) + "\n```\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", action="append", metavar="LABEL=PATH",
                        help="a checkout to run (repeat); default: this one, as 'this'")
    parser.add_argument("--select", action="append", help="pytest -m expression, or 'all' (repeat); "
                        "default: 'not workflow' then 'all'")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "suite_results.md")
    parser.add_argument("--append", action="store_true", help="add the table to --output instead of replacing it")
    parser.add_argument("--scratch", type=Path, default=None,
                        help="folder for the logs and run folders (default: a new temporary one)")
    args = parser.parse_args()
    checkouts = dict(item.split("=", 1) for item in args.checkout or [f"this={REPO}"])
    labels = {str(Path(path).resolve()): label for label, path in checkouts.items()}
    scratch = Path(tempfile.mkdtemp(prefix="suite-", dir=args.scratch))
    rows = []
    for number, (select, path) in enumerate((s, p) for s in args.select or ["not workflow", "all"] for p in labels):
        folder = scratch / f"run{number}"
        rows.append(run_suite(Path(path), select, folder, scratch / f"run{number}.log"))
        print(json.dumps(rows[-1]), flush=True)
    earlier = args.output.read_text(encoding="utf-8") + "\n" if args.append and args.output.exists() else ""
    args.output.write_text(earlier + markdown(rows, labels), encoding="utf-8")
    print(f"logs and run folders in {scratch}; table in {args.output}")


if __name__ == "__main__":
    main()
