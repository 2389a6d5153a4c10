"""Data-parallel training: two CPU processes (torchrun, gloo) run the grid and train the heads one process does."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tiny_models import make_tiny_beit, tiny_model_env  # noqa: F401 (a fixture, used by pytestmark)
from train.cli import main

# One torch thread: tiny models on shared cores run far slower with thread hand-offs.
pytestmark = pytest.mark.usefixtures("tiny_model_env")

REPO = Path(__file__).resolve().parents[1]


def results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path, shared_data):
    beit = make_tiny_beit(tmp_path / "tiny-beit")
    args = ["--data", str(shared_data / "croatia-streetview"), "--backbones", str(beit),
            "--heads", "linear-haversine,grid,nearest-neighbour,medoid", "--epochs", "2",
            "--num-workers", "0", "--device", "cpu", "--cache-dir", str(tmp_path / "cache")]
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "train", *args,
                           "--out", str(tmp_path / "two")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0

    two, one = results(tmp_path / "two"), results(tmp_path / "one")
    assert two["run"]["processes"] == 2 and one["run"]["processes"] == 1
    assert [r["id"] for r in two["results"]] == [r["id"] for r in one["results"]]
    assert two["dataset"] == one["dataset"]
    assert proc.stdout.count("wrote ") == 1  # only the main process reports (and writes)
    by_id = {r["id"]: r for r in one["results"]}
    for row in two["results"]:
        assert set(row["metrics"]) == {"train", "val", "test"}
        assert row["metrics"]["test"]["n"] == by_id[row["id"]]["metrics"]["test"]["n"]
        if row["head"] in ("nearest-neighbour", "medoid"):
            # No training: identical results prove the sharded embeddings were put back in order.
            assert row["metrics"] == by_id[row["id"]]["metrics"]
        else:  # the same training, sharded: equal up to float rounding
            for split in ("val", "test"):
                assert row["metrics"][split]["mean_km"] == pytest.approx(
                    by_id[row["id"]]["metrics"][split]["mean_km"], rel=1e-4), (row["id"], split)
            assert row["best_epoch"] == by_id[row["id"]]["best_epoch"]
    for row in two["results"]:
        assert (tmp_path / "two" / row["bundle"] / "head.safetensors").is_file()
    leftovers = [p.name for p in (tmp_path / "two" / "bundles").iterdir() if p.name.startswith(".")]
    assert leftovers == []
