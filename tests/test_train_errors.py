"""Bad input ends with one clear message on stderr and exit status 1, never a traceback."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures_data import make_good_folder, write_metadata
from tiny_models import make_tiny_resnet
from train.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    return make_tiny_resnet(tmp_path_factory.mktemp("bb") / "tiny-resnet")


def fails_with(capsys, argv, *fragments):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "\nerror: " in "\n" + err.replace("\r", "\n")  # progress bars may come first
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


def test_missing_data_folder(tmp_path, capsys, resnet):
    fails_with(capsys, ["--data", str(tmp_path / "nowhere"), "--backbones", str(resnet)],
               "dataset folder", "does not exist")


def test_no_data_flag(capsys):
    fails_with(capsys, ["--backbones", "beit"], "no dataset given", "--data")


def test_dataset_problems_are_listed(tmp_path, capsys, resnet):
    folder = tmp_path / "bad"
    (folder / "images").mkdir(parents=True)
    write_metadata(folder, [["images/missing.jpg", "45.0", "15.0", "p1", "", "HR"],
                            ["images/other.jpg", "north", "15.0", "p2", "", "HR"]])
    fails_with(capsys, ["--data", str(folder), "--backbones", str(resnet)], "row 1", "row 2", "north")


def test_skip_bad_drops_bad_rows_and_reports_them(tmp_path, resnet):
    folder = make_good_folder(tmp_path / "good", places=12, views=1)
    with (folder / "metadata.csv").open("a") as fh:
        fh.write("images/missing.jpg,45.0,15.0,9999,,HR\n")
    out = tmp_path / "run"
    assert main(["--data", str(folder), "--backbones", str(resnet), "--heads", "medoid", "--skip-bad",
                 "--out", str(out), "--no-cache", "--num-workers", "0", "--device", "cpu"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"]["skipped_rows"] == 1 and results["dataset"]["images"] == 12
    assert "missing.jpg" in (out / "results.md").read_text()


def test_unknown_head_lists_the_known_ones(tmp_path, capsys, resnet):
    fails_with(capsys, ["--data", str(tmp_path), "--backbones", str(resnet), "--heads", "linear-mse,magic"],
               "unknown head(s) magic", "linear-haversine", "geocell", "nearest-neighbour")


def test_unknown_backbone_lists_the_known_ones(tmp_path, capsys):
    fails_with(capsys, ["--data", str(tmp_path), "--backbones", "vgg16"],
               "unknown backbone 'vgg16'", "beit", "resnet50", "dinov2-small-imgfocus")


def test_unavailable_backbone_names_the_fix(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    fails_with(capsys, ["--data", str(tmp_path), "--backbones", "beit"],
               "microsoft/beit-base-patch16-224", "python -m train convert-offline")


def test_unreachable_hub_fails_at_once_with_the_offline_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: refused, no retries
    fails_with(capsys, ["--data", str(tmp_path), "--backbones", "beit"],
               "Hugging Face hub (http://127.0.0.1:9) cannot be reached", "python -m train convert-offline",
               "--backbones dinov2-small-imgfocus,mobilenetv2-1.0-deepsort")


def test_folder_that_is_not_a_checkpoint(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    fails_with(capsys, ["--data", str(tmp_path), "--backbones", str(tmp_path / "empty")], "no config.json")


def test_too_few_places_to_split(tmp_path, capsys, resnet):
    folder = make_good_folder(tmp_path / "tiny", places=1, views=2)  # one place cannot fill 3 splits
    fails_with(capsys, ["--data", str(folder), "--backbones", str(resnet)], "too few to fill")


def test_evaluate_a_broken_bundle(tmp_path, capsys, shared_data):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    fails_with(capsys, ["evaluate", "--bundle", str(bundle), "--data", str(shared_data / "osv5m-mapillary")],
               "config.json is missing")
    (bundle / "config.json").write_text(json.dumps({"format": "geoai-bundle/1", "fusion": "none",
                                                    "backbone": {"name": "resnet-50", "source": "microsoft/resnet-50"},
                                                    "head": {"type": "linear-mse", "embed_dim": 4,
                                                             "coord_mean": [0, 0], "coord_std": [1, 1]}}))
    fails_with(capsys, ["evaluate", "--bundle", str(bundle), "--data", str(shared_data / "osv5m-mapillary")],
               "head.safetensors")


def test_evaluate_with_unavailable_backbone(tmp_path, capsys, shared_data, resnet, monkeypatch):
    import shutil

    from geoai.models import build_head, load_backbone, save_bundle

    copy = shutil.copytree(resnet, tmp_path / "gone-resnet")
    backbone = load_backbone(str(copy), device="cpu")
    head = build_head("linear-mse", backbone.embed_dim, train_latlon=[[45.0, 15.0], [46.0, 16.0]])
    save_bundle(tmp_path / "bundle", backbone=backbone, head=head, metrics={}, dataset_info={}, fusion="single")
    shutil.rmtree(copy)
    fails_with(capsys, ["evaluate", "--bundle", str(tmp_path / "bundle"),
                        "--data", str(shared_data / "osv5m-mapillary")], "gone-resnet")


def test_publish_needs_a_run(tmp_path, capsys):
    fails_with(capsys, ["publish", str(tmp_path)], "results.json is missing")
    (tmp_path / "results.json").write_text("[1, 2]")
    fails_with(capsys, ["publish", str(tmp_path)], "is not the results of `python -m train`")


def test_evaluate_with_bad_device_or_workers(tmp_path, capsys, shared_data):
    data = str(shared_data / "osv5m-mapillary")
    fails_with(capsys, ["evaluate", "--bundle", str(tmp_path), "--data", data, "--device", "gpu0"],
               "unknown device 'gpu0'")
    fails_with(capsys, ["evaluate", "--bundle", str(tmp_path), "--data", data, "--num-workers", "-1"],
               "num-workers must be 0")


def test_unwritable_output_folder(tmp_path, capsys, resnet):
    folder = make_good_folder(tmp_path / "good", places=12, views=1)
    (tmp_path / "a-file").write_text("")
    fails_with(capsys, ["--data", str(folder), "--backbones", str(resnet), "--heads", "medoid",
                        "--out", str(tmp_path / "a-file" / "run"), "--no-cache", "--device", "cpu"],
               "Not a directory", "a-file")


def test_convert_offline_into_a_file_names_the_backbone(tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    fails_with(capsys, ["convert-offline", "--out", str(tmp_path / "a-file")],
               "cannot convert dinov2-small-imgfocus", "a-file")


def test_command_line_error_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "train", "--data", str(tmp_path / "missing"),
                           "--backbones", "beit"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr
