"""scripts/benchmarks/gpu_check.py without a GPU: one clear line and the documented exit status, nothing run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "benchmarks" / "gpu_check.py"


@pytest.mark.slow  # a subprocess (CI runs it; `make test-fast` skips it)
def test_without_a_gpu_it_exits_3_with_one_line(tmp_path):
    # No GPU visible, whatever the machine has.
    env = dict(os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="", PYTHONWARNINGS="ignore")
    out = tmp_path / "table.md"
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], env=env, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 3
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == ["gpu_check: no CUDA GPU visible; nothing measured (exit 3)"]
    assert not out.exists()
