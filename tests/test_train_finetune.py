"""Full fine-tuning for one epoch on a tiny BEiT: the backbone really changes and ships in the bundle."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from geoai.data import load_image_folder, open_image
from geoai.models import Bundle
from tiny_models import make_tiny_beit, tiny_model_env, write_colour_coded_folder  # noqa: F401 (a fixture)
from train.cli import main

# One torch thread: tiny models on shared cores run far slower with thread hand-offs.
pytestmark = pytest.mark.usefixtures("tiny_model_env")


@pytest.mark.slow
def test_finetune_trains_the_backbone_and_bundles_it(tmp_path, monkeypatch):
    import train.grid

    data = write_colour_coded_folder(tmp_path / "colours", n_places=20, views=2)
    beit = make_tiny_beit(tmp_path / "tiny-beit")
    out = tmp_path / "run"
    embedded_with = []
    original_embed = train.grid.embed_dataset

    def counting_embed(runtime, backbone, *args, **kwargs):
        embedded_with.append(backbone)
        return original_embed(runtime, backbone, *args, **kwargs)

    monkeypatch.setattr(train.grid, "embed_dataset", counting_embed)
    assert main(["--data", str(data), "--backbones", str(beit), "--heads", "grid", "--finetune",
                 "--epochs", "1", "--batch-size", "8", "--out", str(out), "--no-cache",
                 "--num-workers", "0", "--device", "cpu"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["run"]["finetune"] is True
    assert [r["id"] for r in results["results"]] == ["tiny-beit-grid-single", "tiny-beit-grid-mean"]
    assert all(r["epochs_run"] == 1 and r["best_epoch"] == 1 for r in results["results"])
    # The generated folder has square_id: the grid head uses the study's grid squares.
    assert any("study grid from square_id" in note for note in results["notes"])
    assert "fine-tuned" in (out / "results.md").read_text()
    # Only each fine-tuned backbone embeds the dataset: frozen embeddings would go unused.
    assert len(embedded_with) == 2 and len({id(b) for b in embedded_with}) == 2

    original = load_file(str(beit / "model.safetensors"))
    place = load_image_folder(data).frame.groupby("location_id")["path"].apply(list).iloc[0]
    for row in results["results"]:
        bundle_dir = out / row["bundle"]
        tuned = load_file(str(bundle_dir / "backbone" / "model.safetensors"))
        changed = [k for k in original if k in tuned and not torch.equal(original[k], tuned[k])]
        assert changed, "fine-tuning left every backbone weight unchanged"
        bundle = Bundle.load(bundle_dir, device="cpu")  # loads the bundled, fine-tuned backbone
        lat, lon = bundle.predict_images([open_image(p) for p in place])
        assert -90 <= lat <= 90 and -180 <= lon < 180
        assert bundle.config.backbone.bundled is True


class Interrupted(Exception):
    pass


@pytest.mark.slow
def test_an_interrupted_finetune_continues_to_the_uninterrupted_result(tmp_path, monkeypatch):
    import train.finetune

    data = write_colour_coded_folder(tmp_path / "colours", n_places=16, views=1)
    beit = make_tiny_beit(tmp_path / "tiny-beit")

    def run(out):
        return main(["--data", str(data), "--backbones", str(beit), "--heads", "linear-haversine", "--finetune",
                     "--fusion", "single", "--epochs", "3", "--patience", "3", "--batch-size", "8",
                     "--out", str(out), "--no-cache", "--num-workers", "0", "--device", "cpu"])

    assert run(tmp_path / "whole") == 0
    validate = train.finetune.predict_places
    calls = []

    def killed_in_third_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # after the third epoch's training steps, before its checkpoint
            raise Interrupted
        return validate(*args, **kwargs)

    monkeypatch.setattr(train.finetune, "predict_places", killed_in_third_epoch)
    with pytest.raises(Interrupted):
        run(tmp_path / "resumed")
    assert (tmp_path / "resumed" / "checkpoints" / "tiny-beit-linear-haversine-single.pt").is_file()
    monkeypatch.setattr(train.finetune, "predict_places", validate)
    assert run(tmp_path / "resumed") == 0

    whole, resumed = (json.loads((tmp_path / d / "results.json").read_text())["results"][0]
                      for d in ("whole", "resumed"))
    assert resumed["epochs_run"] == whole["epochs_run"] == 3
    for split in ("train", "val", "test"):  # one process: the same numbers
        assert resumed["metrics"][split]["mean_km"] == pytest.approx(whole["metrics"][split]["mean_km"], rel=1e-6)
    assert not (tmp_path / "resumed" / "checkpoints").exists()
