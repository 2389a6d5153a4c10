"""The game benchmark times the game's own round: its answers are the ones the game gives."""
from __future__ import annotations

import pytest

from geoai.bench.game import make_bundles, run_game_process
from geoai.data import load_image_folder, open_image
from tiny_models import make_tiny_beit, make_tiny_resnet, tiny_model_env  # noqa: F401 - fixture


@pytest.mark.slow
def test_game_benchmark_rounds_answer_like_the_game(shared_data, tmp_path, tiny_model_env):
    from app.players import ModelPlayers, read_opponent

    frame = load_image_folder(shared_data / "croatia-streetview", check_images="none").frame.head(4)
    photos = list(frame["path"])
    checkpoints = [make_tiny_beit(tmp_path / "tiny-beit"), make_tiny_resnet(tmp_path / "tiny-resnet")]
    bundles = make_bundles(checkpoints, frame[["lat", "lon"]].to_numpy(), tmp_path / "bundles")

    result = run_game_process(bundles, photos, rounds=2)

    assert result["rounds"] == 2 and 0 < result["round_p50_ms"] <= result["round_p95_ms"]
    assert result["cold_start_s"] > 0 and result["peak_rss_mb"] > 0
    assert len(result["settings"]) == 2
    last = result["last_round"]
    game = ModelPlayers(device="cpu", models_dir=tmp_path / "no-predictions")
    for folder in bundles:
        info = read_opponent(folder)
        expected = game.predict_photos(info, [open_image(last["photo"])]).latlon
        assert last["answers"][info.name] == pytest.approx(expected, abs=1e-3), info.name
