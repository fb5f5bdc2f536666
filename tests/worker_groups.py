"""Which test files pytest-xdist keeps on one worker (the README's test command runs the suite
with ``-n auto --dist loadfile``; ``tests/conftest.py`` installs :func:`make_scheduler`).

Each worker builds the session fixtures its tests need, so a fixture that runs a pipeline or a
training would be built once per worker if its tests were spread out. xdist's ``loadfile`` keeps
a file's tests together (its module fixtures are built once); :func:`file_groups` also joins the
files that share an expensive session fixture. (``--dist loadgroup`` with ``xdist_group`` marks
would say the same, but pytest-xdist 3.8 appends the group to ``item._nodeid``, which pytest 9.2
no longer reads for the test id: the groups were silently ignored when tried here.)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

# Session fixtures that run a pipeline or a training (tens of seconds each) -> their group.
# Add a fixture here when it is expensive to build; one built from another takes that one's group.
SHARED_SESSION_FIXTURES = {"demo_run": "demo_run", "demo_copy": "demo_run", "baseline": "baseline",
                           "unet_model": "unet_model", "unet_package": "unet_model", "tiny_package": "tiny_package"}


def source_texts(root: Path) -> dict[str, str]:
    """Test file under ``root/tests`` (relative to `root`, posix) -> its source text, sorted by name."""
    return {path.relative_to(root).as_posix(): path.read_text(encoding="utf-8")
            for path in sorted((root / "tests").rglob("test_*.py"))}


def file_groups(sources: dict[str, str]) -> dict[str, str]:
    """Test file -> the first file of its group, for the files of :func:`source_texts`.

    A file is its own group unless its source names a fixture of :data:`SHARED_SESSION_FIXTURES`;
    files naming fixtures of one group are joined (union-find), and a group is named after its
    first file in sorted order.
    """
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    files = sorted(sources)
    for relative in files:
        text = sources[relative]
        for name, group in SHARED_SESSION_FIXTURES.items():
            if re.search(rf"\b{name}\b", text):
                # the file (earlier in sorted order) stays the root, so the group is named after it
                first, second = sorted((find(f"fixture:{group}"), find(relative)),
                                       key=lambda key: (key.startswith("fixture:"), key))
                parent[second] = first
    return {relative: find(relative) for relative in files}


def heavy_files(sources: dict[str, str]) -> set[str]:
    """The files of :func:`source_texts` marked ``workflow`` or ``slow``: the ones that run a
    pipeline or a training, tens of seconds per test rather than milliseconds."""
    marked = re.compile(r"pytest\.mark\.(workflow|slow)\b")
    return {relative for relative, text in sources.items() if marked.search(text)}


def make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's file scheduling with the groups of :func:`file_groups` as its work units, handed
    out heaviest first: groups with a file of :func:`heavy_files` before the others, each kind by
    number of tests (xdist's own order counts tests only, which hands a group of five pipeline
    tests out after every file of more quick tests, where it can run alone at the end)."""
    from xdist.scheduler import LoadFileScheduling

    sources = source_texts(config.rootpath)
    groups = file_groups(sources)
    heavy = {groups[file] for file in heavy_files(sources)}

    class SharedFixtureScheduling(LoadFileScheduling):
        ordered = False

        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::", 1)[0]
            return groups.get(file, file)

        def _assign_work_unit(self, node: Any) -> None:
            if not self.ordered:  # the first call comes right after schedule() built the queue
                units = sorted(self.workqueue.items(), key=lambda unit: (unit[0] not in heavy, -len(unit[1])))
                self.workqueue.clear()
                self.workqueue.update(units)
                self.ordered = True
            super()._assign_work_unit(node)

    return SharedFixtureScheduling(config, log)
