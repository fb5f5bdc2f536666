"""Which test files share a pytest-xdist worker (tests/worker_groups.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from worker_groups import file_groups, heavy_files, source_texts

REPO = Path(__file__).resolve().parents[1]


def _tree(root: Path, sources: dict[str, str]) -> Path:
    for relative, text in sources.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root


def test_files_sharing_an_expensive_fixture_share_a_group(tmp_path):
    root = _tree(tmp_path, {
        "tests/test_b.py": "def test_b(demo_run): pass\n",
        "tests/sub/test_a.py": "def test_a(demo_copy): pass\n",
        "tests/test_c.py": "def test_c(tmp_path): pass  # baseline_x is another name\n",
        "tests/test_d.py": "def test_d(baseline, unet_package): pass\n",
        "tests/test_e.py": "def test_e(unet_model): pass\n",
        "tests/helpers.py": "demo_run = None\n",
    })
    assert file_groups(source_texts(root)) == {
        "tests/sub/test_a.py": "tests/sub/test_a.py", "tests/test_b.py": "tests/sub/test_a.py",
        "tests/test_c.py": "tests/test_c.py",
        "tests/test_d.py": "tests/test_d.py", "tests/test_e.py": "tests/test_d.py",
    }


@pytest.mark.parametrize(("files", "together"), [
    (["tests/workflow/test_demo.py", "tests/test_report_workflow.py", "tests/workflow/test_modelzoo_workflow.py"],
     True),
    (["tests/reliability/test_kill_resume.py", "tests/reliability/test_disk_full.py"], True),
    (["tests/test_atomic.py", "tests/workflow/test_demo.py"], False),
], ids=["demo-run", "reliability-baseline", "unrelated"])
def test_the_suites_groups(files, together):
    groups = file_groups(source_texts(REPO))
    assert (len({groups[file] for file in files}) == 1) is together


def test_heavy_files_are_the_marked_ones(tmp_path):
    root = _tree(tmp_path, {
        "tests/test_pipeline.py": "import pytest\npytestmark = pytest.mark.workflow\n",
        "tests/test_training.py": "import pytest\n@pytest.mark.slow\ndef test_t(): pass\n",
        "tests/test_quick.py": "import pytest\n@pytest.mark.parametrize('x', [1])\ndef test_q(x): pass\n",
    })
    assert heavy_files(source_texts(root)) == {"tests/test_pipeline.py", "tests/test_training.py"}
