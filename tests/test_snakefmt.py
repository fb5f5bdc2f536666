"""The Snakefile and every rule file are snakefmt-clean, as the Snakemake workflow catalog expects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_snakefile_and_rules_are_snakefmt_clean():
    pytest.importorskip("snakefmt", reason="snakefmt is in the [test] extra")
    result = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "--diff", "."], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"run `snakefmt .` to format:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
