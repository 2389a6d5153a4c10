"""A broken model bundle never ends the game: warm_up reports it, the opponent is skipped."""
import json
import pickle
from pathlib import Path

from app.players import ModelPlayers, OpponentInfo


def _info(path: Path) -> OpponentInfo:
    return OpponentInfo(name=path.name, path=path, backbone="x", family="cnn", head="linear",
                        fusion="mean", dataset="", metrics={})


def test_broken_bundles_are_reported_not_raised(tmp_path):
    null_backbone = tmp_path / "null-backbone"
    null_backbone.mkdir()
    (null_backbone / "config.json").write_text(json.dumps({"backbone": None, "head": {"type": "linear"}}))
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text(json.dumps({"backbone": {"name": "x", "bundled": True},
                                                     "head": {"type": "linear", "embed_dim": 10**12}}))
    (pickled / "pytorch_model.bin").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    not_json = tmp_path / "not-json"
    not_json.mkdir()
    (not_json / "config.json").write_text("{")

    problems = ModelPlayers().warm_up([_info(p) for p in (null_backbone, pickled, not_json)])

    assert set(problems) == {"null-backbone", "pickled", "not-json"}
    assert all("cannot play" in why and "\n" not in why for why in problems.values())
