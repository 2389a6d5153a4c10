"""Settings precedence (defaults < --config file < flags) and a run driven by a config file."""
from __future__ import annotations

import dataclasses
import json
import re

import pytest

from tiny_models import make_tiny_resnet, single_torch_thread
from train.cli import build_parser, config_from_args, main
from train.config import ExperimentConfig, build_config
from train.errors import TrainError


def parse(argv):
    return config_from_args(build_parser().parse_args(["run", *argv]))


def test_defaults_are_the_study_grid_plus_ours_and_baselines():
    config = ExperimentConfig()
    assert config.backbones == ["beit", "resnet50"]
    assert config.heads == ["linear-mse", "linear-eqrect", "grid", "linear-haversine", "geocell",
                            "medoid", "nearest-neighbour"]
    assert config.fusion == ["single", "mean"]
    assert (config.epochs, config.patience, config.lr, config.seed) == (100, 10, 1e-3, 0)
    assert (config.finetune_backbone_lr, config.finetune_head_lr) == (1e-5, 1e-4)


def test_file_overrides_defaults_and_flags_override_file(tmp_path):
    path = tmp_path / "exp.json"
    path.write_text(json.dumps({"heads": ["grid", "geocell"], "epochs": 7, "lr": 0.01,
                                "head_params": {"geocell": {"tau_km": 50}}}))
    config = parse(["--data", "d", "--config", str(path), "--epochs", "3", "--backbones", "a, b"])
    assert config.heads == ["grid", "geocell"]  # from the file
    assert config.lr == 0.01  # from the file
    assert config.epochs == 3  # the flag wins over the file
    assert config.backbones == ["a", "b"]
    assert config.head_params == {"geocell": {"tau_km": 50}}
    assert config.patience == 10  # untouched default


def test_no_cache_flag_disables_the_cache():
    assert parse(["--data", "d"]).cache_dir == ".cache/embeddings"
    assert parse(["--data", "d", "--no-cache"]).cache_dir is None


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must hold a JSON object"),
    ('{"epochz": 3}', "unknown setting(s) ['epochz']"),
    ('{"epochs": "many"}', "epochs must be a number"),
])
def test_bad_config_files_are_explained(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(TrainError, match=re.escape(message)):
        parse(["--data", "d", "--config", str(path)])


@pytest.mark.parametrize("values, message", [
    ({"data": "d", "epochs": 0}, "epochs must be at least 1"),
    ({"data": "d", "fusion": "both"}, "unknown fusion mode"),
    ({"data": "d", "lr": -1}, "lr must be positive"),
    ({"data": "d", "backbones": ""}, "no backbones given"),
    ({}, "no dataset given"),
    ({"data": "d", "head_params": {"magic": {}}}, "head_params must map head types"),
    ({"data": "d", "num_workers": -1}, "num-workers must be 0"),
    ({"data": "d", "split_fractions": "abc"}, "split_fractions must be 3 numbers"),
    ({"data": "d", "split_fractions": [0.5, 0.5, 0.5]}, "must sum to 1"),
    ({"data": "d", "device": "gpu0"}, "unknown device 'gpu0'"),
    ({"data": "d", "device": "cuda:99"}, "cuda:99"),
    ({"data": 5}, "data must be a folder path"),
])
def test_invalid_settings_are_rejected(values, message):
    with pytest.raises(TrainError, match=message):
        build_config(values).validate()


def test_help_shows_every_run_option_with_its_default(capsys):
    for argv in (["--help"], ["run", "--help"]):
        with pytest.raises(SystemExit) as done:
            main(argv)
        assert done.value.code == 0
        text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
        for spec in dataclasses.fields(ExperimentConfig):
            assert "--" + spec.name.replace("_", "-") in text
        assert "--out OUT run folder to write (default runs/latest)" in text
        assert "batch size (default 64)" in text and "(default 0.6,0.2,0.2)" in text
        assert "--config FILE.json" in text and "--no-cache" in text


def _flags(values: dict) -> list[str]:
    """Command-line flags spelling `values` (ExperimentConfig field -> value)."""
    argv = []
    for name, value in values.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif name == "data":
            argv += [part for folder in value for part in (flag, folder)]
        elif isinstance(value, list):
            argv += [flag, ",".join(map(str, value))]
        elif isinstance(value, dict):
            argv += [flag, json.dumps(value)]
        else:
            argv += [flag, str(value)]
    return argv


def test_flags_and_a_config_file_give_the_same_run(tmp_path):
    values = {"data": ["a", "b"], "name": "world", "out": "runs/x", "backbones": ["dinov2-small-imgfocus", "o/m"],
              "heads": ["grid", "medoid"], "fusion": ["mean"], "epochs": 3, "patience": 2, "batch_size": 8,
              "lr": 0.01, "seed": 7, "finetune": True, "finetune_backbone_lr": 2e-5, "finetune_head_lr": 3e-4,
              "device": "cpu", "cache_dir": "cache", "skip_bad": True, "num_workers": 0,
              "split_fractions": [0.5, 0.25, 0.25], "head_params": {"geocell": {"tau_km": 50}}}
    defaults = ExperimentConfig().to_dict()
    assert set(values) == set(defaults) and all(values[k] != defaults[k] for k in values)  # every option moved
    path = tmp_path / "run.json"
    path.write_text(json.dumps(values))
    from_file = parse(["--config", str(path)])
    assert from_file.to_dict() == values
    assert parse(_flags(values)) == from_file
    assert config_from_args(build_parser().parse_args(_flags(values))) == from_file  # without "run"


@pytest.mark.parametrize("argv, message", [
    (["--head-params", "{oops"], "argument --head-params: not valid JSON"),
    (["--head-params", "[1]"], "argument --head-params: expected a JSON object"),
    (["--split-fractions", "a,b,c"], "argument --split-fractions: expected comma-separated numbers"),
    (["--epochs", "many"], "argument --epochs: invalid int value"),
])
def test_bad_flag_values_are_explained(argv, message, capsys):
    with pytest.raises(SystemExit):
        main(["--data", "d", *argv])
    assert message in capsys.readouterr().err


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(TrainError, match="does not exist"):
        parse(["--data", "d", "--config", str(tmp_path / "nope.json")])


@pytest.mark.slow
def test_a_run_follows_its_config_file(tmp_path, shared_data):
    resnet = make_tiny_resnet(tmp_path / "tiny-resnet")
    config_path = tmp_path / "exp.json"
    config_path.write_text(json.dumps({
        "data": str(shared_data / "osv5m-mapillary"), "backbones": [str(resnet)],
        "heads": ["linear-haversine", "medoid"], "fusion": ["single", "mean"], "epochs": 50,
        "out": str(tmp_path / "from-file"), "cache_dir": None, "num_workers": 0, "device": "cpu"}))
    out = tmp_path / "flag-out"
    (out / "bundles" / "earlier-run-bundle").mkdir(parents=True)
    with single_torch_thread():
        assert main(["--config", str(config_path), "--epochs", "2", "--out", str(out)]) == 0
    assert not (tmp_path / "from-file").exists()  # --out beat the file's "out"
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["epochs"] == 2 and results["config"]["heads"] == ["linear-haversine", "medoid"]
    assert {r["id"] for r in results["results"]} == {"tiny-resnet-linear-haversine-single",
                                                     "baseline-medoid-single"}
    # osv5m has one image per place: the fused mode is skipped and the reason reported.
    assert results["run"]["fusion"] == ["single"]
    assert "one image" in (out / "results.md").read_text()
    assert sorted(p.name for p in (out / "bundles").iterdir()) == ["baseline-medoid-single",
                                                                   "tiny-resnet-linear-haversine-single"]
    row = results["results"][0]
    assert 1 <= row["epochs_run"] <= 2
