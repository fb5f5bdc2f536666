"""Soak test: repeated random kill -9 of the whole workflow until it finishes, then compare.

Not a CI test (it runs for many minutes). Scenarios, each against an uninterrupted
reference run of the same config on this machine:

1. **workflow**: a larger demo (3 positions, one named ``well A1 (ctrl) ü``, 12 frames of
   256 x 256). Each trial starts the workflow, SIGKILLs its whole process group after a
   random delay, checks what is on disk, runs ``--unlock`` and starts again with
   ``--rerun-incomplete`` until a run ends by itself. After every kill: every output present
   under its final name must be byte-identical to the reference's (Snakemake's timestamp
   markers aside; tiles.zarr is temporary and skipped), and the temporary
   ``.NAME.tmp-*`` folders left by killed writers are counted. At the end the CSVs must be
   byte-identical to the reference's.
2. **train**: ``spheroseg train`` on a small synthetic set, killed at random times and rerun
   until it finishes; the weights must equal those of an uninterrupted run bit for bit.
3. **train-workflow** (``--train-workflow``, slow on CPU): the demo with
   ``training.enabled`` (two epochs of the train rule's fixed 50 steps), killed when the train
   job's first epoch checkpoint appears, resumed; CSVs compared with an uninterrupted run.

Results go to ``benchmarks/soak_results.md``; work folders to ``benchmarks/_work/soak``
(deleted at the end unless ``--keep``). The Snakefile, rules, config and package are copied
there first and every run uses the copy, so edits to the tree during the soak do not mix in. Run from the repository root:
``nice python benchmarks/soak_benchmark.py``.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "_work" / "soak"
RESULTS = REPO / "benchmarks" / "soak_results.md"
FROZEN = WORK / "frozen"  # the workflow and package as they were at the start (others edit the tree)
BIN = Path(sys.executable).parent
ENV = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           PYTHONPATH=f"{FROZEN / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
DEMO = {"positions": {"p0": 2, "p1": 1, "well A1 (ctrl) ü": 1}, "timepoints": 12, "size": [256, 256]}
OUTPUTS = ("image.ome.zarr", "tiles.json", "tiles.zarr", "probabilities.ome.zarr",
           "image.ome.zarr/labels/segmentation", "segment.json", "contours.geojson", "metrics", "metrics.csv")
TRAIN = ["--synthetic", "8", "--synthetic-size", "128", "--patch-size", "128", "--batch-size", "4",
         "--steps-per-epoch", "4", "--epochs", "5", "--patience", "0", "--seed", "0", "--device", "cpu",
         "--no-progress"]


@dataclass
class Trial:
    """One soak trial: kills until the run finished by itself."""

    name: str
    kills: list[float] = field(default_factory=list)
    running_at_kill: list[str] = field(default_factory=list)
    partial_finals: list[str] = field(default_factory=list)
    leftovers: int = 0
    identical: bool | None = None
    wall_s: float = 0.0
    note: str = ""


def freeze_sources() -> str:
    """Copy the Snakefile, rules, config, conda envs and package to FROZEN; return their commit."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    FROZEN.mkdir(parents=True)
    shutil.copy2(REPO / "Snakefile", FROZEN / "Snakefile")
    for folder in ("workflow", "config", "envs", "src"):
        shutil.copytree(REPO / folder, FROZEN / folder, ignore=ignore)
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "Snakefile", "workflow", "config",
                            "src"], capture_output=True, text=True).stdout.strip()
    return commit + (" plus uncommitted changes" if dirty else "")


def write_config(workdir: Path, model: Path, **changes) -> list[str]:
    """A complete config (defaults + the soak demo + `changes`) and the args that use it."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text(encoding="utf-8"))
    config["model"], config["demo"] = str(model), dict(config["demo"], **DEMO)
    for key, value in changes.items():
        config[key] = dict(config[key], **value) if isinstance(value, dict) else value
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "soak.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return ["--configfile", str(path), "--replace-workflow-config"]


def snakemake_command(workdir: Path, config: list[str], *extra: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(FROZEN / "Snakefile"), "--directory",
            str(workdir), "--cores", "2", *config, *extra]


def run_to_end(command: list[str], log: Path) -> float:
    """Run a command to completion (raising on failure); return its wall time."""
    start = time.monotonic()
    with open(log, "ab") as handle:
        subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=ENV, check=True)
    return time.monotonic() - start


def run_killed_after(command: list[str], delay: float, log: Path, cwd: Path | None = None) -> bool:
    """Start `command` in its own process group; SIGKILL the group after `delay` seconds.
    Return True if it was killed, False if it ended first (then it must have succeeded)."""
    with open(log, "ab") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=ENV, cwd=cwd,
                                   start_new_session=True)
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return True
    if process.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed with exit {process.returncode}; see {log}")
    return False


def csvs(workdir: Path) -> dict[str, bytes]:
    return {p.relative_to(workdir).as_posix(): p.read_bytes() for p in sorted((workdir / "results").rglob("*.csv"))}


def tree_files(root: Path) -> dict[str, Path]:
    """Files of an output (the image's nested labels aside: they are an output of their own)."""
    if root.is_file():
        return {"": root}
    return {p.relative_to(root).as_posix(): p for p in root.rglob("*")
            if p.is_file() and p.name != ".snakemake_timestamp"
            and not (root.name == "image.ome.zarr" and p.relative_to(root).parts[0] == "labels")}


def partial_finals(workdir: Path, reference: Path) -> list[str]:
    """Final-named outputs that differ from the reference's (every output is written
    atomically and deterministically, so any difference is a partial or wrong output)."""
    bad = []
    for folder in sorted((workdir / "results" / "demo").iterdir()):
        for name in OUTPUTS:
            ours = folder / name
            relative = ours.relative_to(workdir).as_posix()
            if not ours.exists() or name == "tiles.zarr":  # temp(): the reference deleted it
                continue
            mine, theirs = tree_files(ours), tree_files(reference / relative)
            if mine.keys() != theirs.keys() or not all(filecmp.cmp(mine[k], theirs[k], shallow=False) for k in mine):
                bad.append(relative)
    return bad


def running_jobs(log_text: str) -> list[str]:
    """Rules of the jobs started but not finished in a Snakemake log."""
    started, finished = {}, set()
    jobid = None
    for line in log_text.splitlines():
        line = line.strip()
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
            jobid = rule
        elif line.startswith("jobid:") and jobid:
            started[line.split()[1]] = jobid
        elif line.startswith("Finished jobid:") or line.startswith("Finished job "):
            finished.add(line.split()[2])
    return sorted({rule for job, rule in started.items() if job not in finished})


def leftover_count(workdir: Path) -> int:
    return sum(1 for _ in (workdir / "results").rglob(".*.tmp-*"))


def workflow_trial(index: int, model: Path, reference: Path, reference_s: float, rng: random.Random) -> Trial:
    """Kill at random moments until a run ends by itself; then compare CSVs."""
    trial = Trial(f"workflow #{index}")
    workdir = WORK / f"workflow-{index}"
    config = write_config(workdir, model)
    start = time.monotonic()
    extra: tuple[str, ...] = ()
    while True:
        log = workdir / f"run-{len(trial.kills)}.log"
        delay = rng.uniform(0.2, 0.6) * reference_s
        if not run_killed_after(snakemake_command(workdir, config, *extra), delay, log):
            break
        trial.kills.append(round(delay, 1))
        trial.running_at_kill.append("+".join(running_jobs(log.read_text(errors="replace"))) or "(startup)")
        if (workdir / "results" / "demo").is_dir():
            trial.partial_finals += partial_finals(workdir, reference)
        subprocess.run(snakemake_command(workdir, config, "--unlock"), env=ENV, capture_output=True, check=True)
        extra = ("--rerun-incomplete",)
    trial.wall_s = time.monotonic() - start
    trial.leftovers = leftover_count(workdir)
    trial.identical = csvs(workdir) == csvs(reference)
    return trial


def train_trial(index: int, reference: Path, reference_s: float, rng: random.Random) -> Trial:
    """Kill `spheroseg train` at random moments until it finishes; compare the weights."""
    import torch

    trial = Trial(f"train #{index}")
    folder = WORK / f"train-{index}"
    folder.mkdir(parents=True, exist_ok=True)
    command = [str(BIN / "spheroseg"), "train", *TRAIN, "--output", str(folder / "model.pt")]
    start = time.monotonic()
    while run_killed_after(command, delay := rng.uniform(0.2, 0.9) * reference_s, folder / "train.log"):
        trial.kills.append(round(delay, 1))
        trial.running_at_kill.append("train")
        if (folder / "model.pt").exists():
            trial.partial_finals.append("model.pt present after a kill")
    trial.wall_s = time.monotonic() - start
    trial.leftovers = sum(1 for _ in folder.glob(".*.tmp-*"))
    got = torch.jit.load(str(folder / "model.pt"), map_location="cpu").state_dict()
    want = torch.jit.load(str(reference), map_location="cpu").state_dict()
    trial.identical = got.keys() == want.keys() and all(got[k].equal(want[k]) for k in want)
    trial.note = f"resumed {(folder / 'train.log').read_text(errors='replace').count('resuming from checkpoint')}x"
    return trial


def train_workflow_trial(model: Path, annotations: Path) -> Trial:
    """training.enabled (two epochs): reference run, then a run killed during the train job
    as soon as its first epoch checkpoint exists, resumed; CSVs compared."""
    training = {"enabled": True, "annotations": str(annotations), "epochs": 2}
    reference = WORK / "train-workflow-reference"
    reference_s = run_to_end(snakemake_command(reference, write_config(reference, model, training=training)),
                             reference / "run.log")
    trial = Trial("train-workflow")
    workdir = WORK / "train-workflow-killed"
    config = write_config(workdir, model, training=training)
    start = time.monotonic()
    process_log = workdir / "run-0.log"
    with open(process_log, "ab") as handle:
        process = subprocess.Popen(snakemake_command(workdir, config), stdout=handle, stderr=subprocess.STDOUT,
                                   env=ENV, start_new_session=True)
        while process.poll() is None and not list((workdir / "models").glob("*.checkpoints/last.pt")):
            time.sleep(0.01)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    trial.kills.append(round(time.monotonic() - start, 1))
    trial.running_at_kill.append("+".join(running_jobs(process_log.read_text(errors="replace"))))
    trial.partial_finals += [f"{p.name} present after the kill" for p in (workdir / "models").glob("*.pt")]
    subprocess.run(snakemake_command(workdir, config, "--unlock"), env=ENV, capture_output=True, check=True)
    run_to_end(snakemake_command(workdir, config, "--rerun-incomplete"), workdir / "run-1.log")
    trial.wall_s = time.monotonic() - start
    trial.leftovers = leftover_count(workdir) + sum(1 for _ in (workdir / "models").glob(".*.tmp-*"))
    trial.identical = csvs(workdir) == csvs(reference)
    train_log = "".join(p.read_text(errors="replace") for p in (workdir / "models").glob("*.log"))
    resumed = "resumed from it" if "resuming from checkpoint" in train_log else "NOT resumed"
    trial.note = f"killed at the first epoch checkpoint; {resumed}; reference with training {reference_s:.0f} s"
    return trial


def report(trials: list[Trial], args: argparse.Namespace, references: dict[str, float], model: Path,
           commit: str) -> str:
    rows = [f"| {t.name} | {len(t.kills)} | {', '.join(map(str, t.kills)) or '-'} | "
            f"{'; '.join(t.running_at_kill) or '-'} | {len(t.partial_finals)} | {t.leftovers} | "
            f"{'yes' if t.identical else 'NO'} | {t.wall_s:.0f} | {t.note} |" for t in trials]
    partial = [f"- {t.name}: {p}" for t in trials for p in t.partial_finals]
    chosen = " (from SPHEROSEG_TEST_MODEL)" if "SPHEROSEG_TEST_MODEL" in os.environ else ""
    return "\n".join([
        "# Soak benchmark: repeated kill -9 until the workflow finishes",
        "",
        f"Written by `benchmarks/soak_benchmark.py` (seed {args.seed}), workflow and package frozen at commit "
        f"`{commit}`, on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPUs "
        f"(load average {os.getloadavg()[0]:.1f} at the end, shared machine), Python "
        f"{platform.python_version()}, model `{model}`{chosen}.",
        "",
        f"Demo: {json.dumps(DEMO, ensure_ascii=False)}; uninterrupted references: "
        + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in references.items()) + ".",
        "Each kill is a SIGKILL of the whole process group (Snakemake and its jobs, or `spheroseg train`) "
        "after a random delay of 20-60 % (workflow trials) or 20-90 % (train trials) of the reference time, "
        "or, for train-workflow, when the first epoch checkpoint appears; then `--unlock` and a rerun with "
        "`--rerun-incomplete` (train: the same command).",
        "",
        "| trial | kills | kill delays (s) | jobs running at each kill | partial outputs under final name "
        "| temp leftovers at end | CSVs / weights identical | wall (s) | note |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        f"Outputs present under their final name after a kill and different from the reference: {len(partial)}",
        *partial,
        "",
        "\"temp leftovers\" are `.NAME.tmp-*` folders of writers killed mid-write still present at the end "
        "(the next write of the same output removes them since commit 1e018a6; see docs/reliability.md).",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3, help="workflow trials")
    parser.add_argument("--train-trials", type=int, default=2)
    parser.add_argument("--train-workflow", action="store_true", help="also the slow training.enabled scenario")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep benchmarks/_work/soak")
    args = parser.parse_args()
    model = Path(os.environ.get("SPHEROSEG_TEST_MODEL", REPO / "models" / "default.pt")).resolve()
    if not model.is_file():
        sys.exit(f"model not found: {model} (set SPHEROSEG_TEST_MODEL)")
    rng = random.Random(args.seed)
    shutil.rmtree(WORK, ignore_errors=True)
    commit = freeze_sources()
    trials: list[Trial] = []
    references: dict[str, float] = {}

    def save(trial: Trial | None = None) -> None:
        """Add a finished trial and rewrite the results (a cut-short soak keeps what it did)."""
        from spheroseg.atomic import write_text

        trials.extend([trial] if trial else [])
        write_text(RESULTS, report(trials, args, references, model, commit))

    reference = WORK / "reference"
    references["workflow"] = run_to_end(snakemake_command(reference, write_config(reference, model)),
                                        reference / "run.log")
    for i in range(args.trials):
        save(workflow_trial(i, model, reference, references["workflow"], rng))
    if args.train_workflow:
        annotations = WORK / "annotations"
        subprocess.run([str(BIN / "spheroseg"), "demo", "--training-set", "6", "--size", "128", "128",
                        "--output", str(annotations)], env=ENV, check=True, capture_output=True)
        save(train_workflow_trial(model, annotations))
    if args.train_trials:
        (WORK / "train-reference").mkdir(parents=True)
        command = [str(BIN / "spheroseg"), "train", *TRAIN, "--output", str(WORK / "train-reference" / "model.pt")]
        references["train"] = run_to_end(command, WORK / "train-reference" / "train.log")
        for i in range(args.train_trials):
            save(train_trial(i, WORK / "train-reference" / "model.pt", references["train"], rng))
    print(RESULTS.read_text(encoding="utf-8"))
    if not args.keep:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
