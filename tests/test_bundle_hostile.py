"""Hostile and damaged bundles: every case is a one-line BundleError raised before the
head's tensors are allocated (null or wrong-typed fields, impossible sizes, NaN/inf weights,
pickles, weights that disagree with the config), and loading never runs hub code."""
from __future__ import annotations

import ast
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from geoai.geocells import grid_cells
from geoai.models import Bundle, BundleError, build_head, save_bundle
from geoai.models.backbones import BackboneSpec

EMBED_DIM = 16
REPO = Path(__file__).resolve().parents[1]
SPEC = BackboneSpec("tiny", "/nowhere/tiny", "cnn", "a backbone never loaded by these tests")


def _latlon(n: int = 60) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.c_[rng.uniform(42.5, 46.0, n), rng.uniform(13.5, 19.0, n)]


def _head(kind: str):
    torch.manual_seed(0)
    latlon = _latlon()
    if kind == "grid":
        squares = [str(int(lat) % 3) for lat in latlon[:, 0]]
        return build_head("grid", EMBED_DIM, train_latlon=latlon, cells=grid_cells(squares, latlon))
    if kind == "geocell":
        return build_head("geocell", EMBED_DIM, train_latlon=latlon, cell_min_samples=4, cell_max_samples=12)
    if kind == "nearest-neighbour":
        return build_head(kind, EMBED_DIM, train_latlon=latlon,
                          train_embeddings=np.random.default_rng(1).normal(size=(len(latlon), EMBED_DIM)))
    return build_head(kind, EMBED_DIM, train_latlon=latlon)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hostile-bundles")
    return {kind: save_bundle(root / kind, backbone=SPEC, head=_head(kind), metrics={}, fusion="mean",
                              dataset_info={"name": "generated"})
            for kind in ("linear-haversine", "grid", "geocell", "nearest-neighbour")}


def _copy(bundle: Path, tmp_path: Path) -> Path:
    target = tmp_path / bundle.name
    target.mkdir()
    for file in bundle.iterdir():
        (target / file.name).write_bytes(file.read_bytes())
    return target


def _edit_config(path: Path, edit) -> None:
    config = json.loads((path / "config.json").read_text())
    edit(config)
    (path / "config.json").write_text(json.dumps(config))


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def edit(config):
        target = config
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return edit


def _load_fails(path: Path, match: str) -> str:
    with pytest.raises(BundleError, match=match) as info:
        Bundle.load(path)
    message = str(info.value)
    assert "\n" not in message and len(message) < 600
    return message


# (bundle kind, edit of config.json, what the message says)
CONFIG_CASES = {
    "backbone-null": ("linear-haversine", _set("backbone", None), "backbone must be an object"),
    "backbone-string": ("linear-haversine", _set("backbone", "resnet50"), "backbone must be an object"),
    "backbone-name-null": ("linear-haversine", _set("backbone", "name", None), "backbone.name"),
    "backbone-name-number": ("linear-haversine", _set("backbone", "name", 5), "backbone.name"),
    "backbone-name-empty": ("linear-haversine", _set("backbone", "name", " "), "backbone.name"),
    "backbone-source-number": ("linear-haversine", _set("backbone", "source", 7), "backbone.source"),
    "backbone-bundled-string": ("linear-haversine", _set("backbone", "bundled", "yes"), "backbone.bundled"),
    "backbone-embed-huge": ("linear-haversine", _set("backbone", "embed_dim", 10**12), "backbone.embed_dim"),
    "backbone-embed-negative": ("linear-haversine", _set("backbone", "embed_dim", -16), "backbone.embed_dim"),
    "head-null": ("linear-haversine", _set("head", None), "head must be an object"),
    "head-list": ("linear-haversine", _set("head", []), "head must be an object"),
    "head-type-null": ("linear-haversine", _set("head", "type", None), "unknown head type"),
    "head-embed-huge": ("linear-haversine", lambda c: (_set("head", "embed_dim", 10**12)(c),
                                                       _set("backbone", "embed_dim", 10**12)(c)), "embed_dim"),
    "head-embed-zero": ("linear-haversine", _set("head", "embed_dim", 0), "head.embed_dim"),
    "head-embed-negative": ("linear-haversine", _set("head", "embed_dim", -3), "head.embed_dim"),
    "head-embed-null": ("linear-haversine", _set("head", "embed_dim", None), "head.embed_dim"),
    "head-embed-string": ("linear-haversine", _set("head", "embed_dim", "16"), "head.embed_dim"),
    "head-embed-float": ("linear-haversine", _set("head", "embed_dim", 16.5), "head.embed_dim"),
    "head-embed-bool": ("linear-haversine", _set("head", "embed_dim", True), "head.embed_dim"),
    "head-embed-mismatch": ("linear-haversine", _set("head", "embed_dim", 17), "differs from backbone"),
    "coord-mean-nan": ("linear-haversine", _set("head", "coord_mean", [float("nan"), 15.0]), "coord_mean"),
    "coord-std-zero": ("linear-haversine", _set("head", "coord_std", [0.0, 1.0]), "coord_std"),
    "coord-mean-text": ("linear-haversine", _set("head", "coord_mean", "north"), "coord_mean|invalid value"),
    "fusion-null": ("linear-haversine", _set("fusion", None), "fusion"),
    "name-number": ("linear-haversine", _set("name", 12), "name must be"),
    "metrics-list": ("linear-haversine", _set("metrics", []), "metrics must be"),
    "dataset-string": ("linear-haversine", _set("dataset", "croatia"), "dataset must be"),
    "grid-hidden-negative": ("grid", _set("head", "hidden", [-1, 50]), r"head.hidden\[0\]"),
    "grid-hidden-zero": ("grid", _set("head", "hidden", [250, 0]), r"head.hidden\[1\]"),
    "grid-hidden-text": ("grid", _set("head", "hidden", ["big"]), r"head.hidden\[0\]"),
    # every size allowed on its own, together ~8.6 billion parameters (32 GiB)
    "grid-hidden-too-many": ("grid", _set("head", "hidden", [65_536, 65_536, 2]), "parameters"),
    "grid-distance-scale-text": ("grid", _set("head", "distance_scale_km", "far"), "distance_scale_km"),
    "geocell-top-k-zero": ("geocell", _set("head", "top_k", 0), "top_k"),
    "geocell-top-k-negative": ("geocell", _set("head", "top_k", -2), "top_k"),
    "geocell-hidden-huge": ("geocell", _set("head", "hidden", 10**9), "head.hidden"),
    "geocell-tau-null-text": ("geocell", _set("head", "tau_km", "wide"), "tau_km"),
    "neighbours-huge": ("nearest-neighbour", _set("head", "n_train", 10**12), "n_train"),
    "neighbours-too-many": ("nearest-neighbour", _set("head", "n_train", 50_000_000), "parameters"),
    "neighbours-zero": ("nearest-neighbour", _set("head", "n_train", 0), "n_train"),
    "neighbours-negative": ("nearest-neighbour", _set("head", "n_train", -5), "n_train"),
    "neighbours-null": ("nearest-neighbour", _set("head", "n_train", None), "n_train"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_bad_config_fields_are_one_line_errors(bundles, tmp_path, case):
    kind, edit, match = CONFIG_CASES[case]
    path = _copy(bundles[kind], tmp_path)
    Bundle.load(path)  # the untouched copy loads
    _edit_config(path, edit)
    _load_fails(path, match)


@pytest.mark.parametrize("text", ["", "{", "[]", "null", "1e999999", "[" * 100_000 + "]" * 100_000,
                                  '{"format": "geoai-bundle/1"}'])
def test_unparseable_configs(bundles, tmp_path, text):
    path = _copy(bundles["linear-haversine"], tmp_path)
    (path / "config.json").write_text(text)
    _load_fails(path, "config.json|bundle format")


@pytest.mark.parametrize("kind", ["linear-haversine", "grid", "geocell", "nearest-neighbour"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused(bundles, tmp_path, kind, value):
    path = _copy(bundles[kind], tmp_path)
    weights = load_file(str(path / "head.safetensors"))
    name = sorted(k for k, v in weights.items() if v.is_floating_point())[-1]
    weights[name].view(-1)[0] = value
    save_file(weights, str(path / "head.safetensors"))
    assert name in _load_fails(path, "NaN or infinite")


class _Payload:
    def __reduce__(self):  # what a hostile pickle would run on load
        return (print, ("pickle code ran",))


def _pickled_head(path: Path) -> None:
    (path / "head.safetensors").unlink()
    (path / "pytorch_model.bin").write_bytes(pickle.dumps({"linear.weight": _Payload()}))


def _pickle_as_safetensors(path: Path) -> None:
    (path / "head.safetensors").write_bytes(pickle.dumps({"linear.weight": _Payload()}))


def _header_only(shape, dtype="F32", offsets=(0, 8)):
    def write(path: Path) -> None:
        header = json.dumps({"linear.weight": {"dtype": dtype, "shape": list(shape),
                                               "data_offsets": list(offsets)}}).encode()
        (path / "head.safetensors").write_bytes(struct.pack("<Q", len(header)) + header
                                                + bytes(offsets[1]))
    return write


def _reshaped(path: Path) -> None:
    weights = load_file(str(path / "head.safetensors"))
    weights["linear.weight"] = torch.zeros(2, EMBED_DIM + 1)
    save_file(weights, str(path / "head.safetensors"))


def _integer_weights(path: Path) -> None:
    weights = load_file(str(path / "head.safetensors"))
    weights = {k: v.to(torch.int32) for k, v in weights.items()}
    save_file(weights, str(path / "head.safetensors"))


def _bundled_pickle_backbone(path: Path) -> None:
    _edit_config(path, _set("backbone", "bundled", True))
    (path / "backbone").mkdir()
    (path / "backbone" / "config.json").write_text("{}")
    (path / "backbone" / "pytorch_model.bin").write_bytes(pickle.dumps({"w": _Payload()}))


WEIGHT_CASES = {
    "pickled-pytorch-model-bin": (_pickled_head, "pytorch_model.bin .a pickle."),
    "pickle-named-safetensors": (_pickle_as_safetensors, "cannot be read as safetensors"),
    "header-claims-huge-tensor": (_header_only((100_000, 100_000)), "cannot be read as safetensors"),
    "header-negative-size": (_header_only((-2, EMBED_DIM)), "cannot be read as safetensors"),
    "wrong-shape": (_reshaped, "does not match"),
    "integer-weights": (_integer_weights, "not floating point"),
    "bundled-backbone-pickle": (_bundled_pickle_backbone, "a pickle"),
}


@pytest.mark.parametrize("case", sorted(WEIGHT_CASES))
def test_bad_weight_files_are_one_line_errors(bundles, tmp_path, capsys, case):
    make, match = WEIGHT_CASES[case]
    path = _copy(bundles["linear-haversine"], tmp_path)
    make(path)
    _load_fails(path, match)
    assert "pickle code ran" not in capsys.readouterr().out


def _from_pretrained_calls(root: Path):
    for file in root.rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "from_pretrained":
                yield file.relative_to(REPO), node


def test_every_from_pretrained_refuses_remote_code():
    calls = [call for folder in ("geoai", "train", "app", "db") for call in _from_pretrained_calls(REPO / folder)]
    assert calls, "the loaders were not found"
    for file, node in calls:
        flags = {k.arg: k.value for k in node.keywords}
        assert isinstance(flags.get("trust_remote_code"), ast.Constant), f"{file}:{node.lineno}"
        assert flags["trust_remote_code"].value is False, f"{file}:{node.lineno}"
