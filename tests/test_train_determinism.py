"""The same command twice gives the same metrics on CPU; another seed gives other ones."""
from __future__ import annotations

import json

import pytest

from tiny_models import make_tiny_resnet, tiny_model_env  # noqa: F401 (a fixture, used by pytestmark)
from train.cli import main

# One torch thread: tiny models on shared cores run far slower with thread hand-offs.
pytestmark = pytest.mark.usefixtures("tiny_model_env")


def metrics_by_id(out):
    results = json.loads((out / "results.json").read_text())
    return {row["id"]: row["metrics"] for row in results["results"]}


@pytest.mark.slow
def test_same_command_twice_gives_identical_results(tmp_path, shared_data):
    resnet = make_tiny_resnet(tmp_path / "tiny-resnet")

    def run(out, seed):
        # No cache: both runs embed from scratch, so the whole pipeline is compared.
        assert main(["--data", str(shared_data / "croatia-streetview"), "--backbones", str(resnet),
                     "--heads", "linear-mse,grid,geocell,nearest-neighbour", "--epochs", "3",
                     "--seed", str(seed), "--out", str(out), "--no-cache", "--num-workers", "0",
                     "--device", "cpu"]) == 0
        return metrics_by_id(out)

    first, second = run(tmp_path / "a", 0), run(tmp_path / "b", 0)
    assert len(first) == 8  # 4 heads x 2 view modes
    assert first == second  # exact equality, every split and metric
    other = run(tmp_path / "c", 1)
    changed = [k for k in first if "nearest" not in k and first[k] != other[k]]
    assert changed, "a different seed should change the learned heads' results"
    # The nearest-neighbour baseline has no randomness at all.
    assert first["tiny-resnet-nearest-neighbour-single"] == other["tiny-resnet-nearest-neighbour-single"]
