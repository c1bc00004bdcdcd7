"""`bench/gpu_check.py --smoke`: the GPU check's own code, run on CPU with a tiny shape, as people run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.paths import shared_path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_smoke_runs_and_its_batched_tokens_match_stock_generate(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "bench" / "gpu_check.py"),
            "--smoke",
            "--datasets",
            str(shared_path()),
            "--out",
            str(out),
        ],
        cwd=tmp_path,  # runs from anywhere: it finds the package next to itself
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["workload"]["cases"] == 8
    assert result["workload"]["case_tokens"]["distinct"] == 8  # real texts of different lengths
    for key in ("engine_eager_4", "engine_static_4"):
        assert result[key]["every_case_answered_with_its_length"] is True
        assert result[key]["output_tokens_per_s"] > 0
    assert result["static_vs_eager_token_identical"] == "8/8"
    assert result["summary"]["naive_cases_token_identical"] == "4/4"
    assert result["naive"]["output_tokens_per_s"] > 0
    assert result["mxfp4_fp32_base_checkpoint"]["tokens_out"] == 4
    assert "dequantised" in result["mxfp4_fp32_base_checkpoint"]["load"]
    assert "cases/s" not in completed.stderr  # results go to stdout and the file
    assert '"output_tokens_per_s"' in completed.stdout
