"""Precomputed opponents: `python -m train publish` writes each bundle's answers for the map's
test places, and the game serves rounds from that file without torch, never from a stale one.

Bundles: the game's two tiny bundles (test_game_support) plus a tiny geocell classifier, on
croatia-streetview; the predictions file is written once per module by the real code path.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from app.maps import load_map
from app.players import ModelPlayers, read_opponent
from geoai.bundle_files import discover_bundles, weights_digest
from geoai.precomputed import (
    PredictionFile,
    PredictionsError,
    place_digest,
    predictions_path,
    split_fingerprint,
    write_predictions,
)
from geoai.prediction import TOP_CELLS, PlacePrediction
from test_game_support import GAME_MAP, game_environment, tiny_bundles_dir
from tiny_models import make_tiny_resnet, single_torch_thread
from train.cli import main

REPO = Path(__file__).resolve().parents[1]
GEOCELL = "tiny-resnet-geocell"
GAME_BUNDLES = ("tiny-beit-linear", "tiny-resnet-linear")


def _geocell_bundle(models: Path, shared_data: Path) -> Path:
    """A tiny classifier bundle (its answers carry top cells), untrained: only its answers matter."""
    from geoai.data import load_image_folder
    from geoai.models import build_head, load_backbone, save_bundle

    train = load_image_folder(shared_data / GAME_MAP, check_images="none").subset("train")
    backbone = load_backbone(str(make_tiny_resnet(models.parent / "checkpoints" / GEOCELL, seed=3)), device="cpu")
    head = build_head("geocell", backbone.embed_dim, train_latlon=train.coords)
    return save_bundle(models / GEOCELL, backbone=backbone, head=head, metrics={},
                       dataset_info={"name": GAME_MAP, "fingerprint": "test", "split_sizes": {}},
                       fusion="mean", name=GEOCELL)


@pytest.fixture(scope="module")
def published(tmp_path_factory, shared_data):
    """A models folder with three bundles and the map's predictions file, written by precompute_map."""
    from train.precompute import precompute_map

    tmp = tmp_path_factory.mktemp("precomputed")
    models = tmp / "models"
    for bundle in discover_bundles(tiny_bundles_dir(shared_data)):
        shutil.copytree(bundle, models / bundle.name)
    with single_torch_thread():
        _geocell_bundle(models, shared_data)
        messages = []
        written = precompute_map(discover_bundles(models), shared_data / GAME_MAP, models, progress=messages.append)
    places = load_map(shared_data / GAME_MAP).places
    return {"models": models, "tmp": tmp, "places": places, "written": written, "messages": messages,
            "file": predictions_path(models, GAME_MAP)}


def copy_models(published, tmp_path: Path) -> Path:
    target = tmp_path / "models"
    shutil.copytree(published["models"], target)
    return target


def info(models: Path, name: str):
    return read_opponent(models / name)


def test_file_records_every_bundle_digest_and_the_split_fingerprint(published):
    assert published["file"] == published["models"] / "predictions" / f"{GAME_MAP}.sqlite"
    places = published["places"]
    assert [w.places for w in published["written"]] == [len(places)] * 3
    assert f"predicting {GAME_MAP}: {GEOCELL}: {len(places)}/{len(places)} places" in published["messages"]
    file = PredictionFile(published["file"])
    assert file.map_name == GAME_MAP
    assert sorted(file.bundles) == sorted([*GAME_BUNDLES, GEOCELL])
    for name, entry in file.bundles.items():
        assert entry.digest == weights_digest(published["models"] / name)
        assert entry.fingerprint == split_fingerprint(places)
        assert entry.places == len(places)
    assert file.bundles[GEOCELL].head == "geocell"


def test_classifier_answers_keep_their_top_cells(published):
    file = PredictionFile(published["file"])
    digest = weights_digest(published["models"] / GEOCELL)
    for place in published["places"][:5]:
        answer = file.lookup(GEOCELL, digest, place)
        assert answer is not None and answer.top_cells is not None
        probs = [p for _, _, p in answer.top_cells]
        assert 1 <= len(probs) <= TOP_CELLS and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
        linear = file.lookup("tiny-beit-linear", weights_digest(published["models"] / "tiny-beit-linear"), place)
        assert linear is not None and linear.top_cells is None


def test_stored_answers_are_the_live_answers(published):
    players = ModelPlayers()  # no map attached: every answer comes from the model itself
    file = PredictionFile(published["file"])
    infos = [info(published["models"], n) for n in (*GAME_BUNDLES, GEOCELL)]
    with single_torch_thread():
        for place in published["places"][:3]:
            live = players.predictions(infos, place)
            for i in infos:
                stored = file.lookup(i.path.name, weights_digest(i.path), place)
                assert abs(stored.lat - live[i.name].lat) < 1e-3 and abs(stored.lon - live[i.name].lon) < 1e-3
                if stored.top_cells:
                    assert np.allclose(stored.top_cells, live[i.name].top_cells, atol=1e-4)


GAME_SCRIPT = """
import json, sys
sys.path.insert(0, {repo!r})
from streamlit.testing.v1 import AppTest

at = AppTest.from_file({main!r}, default_timeout=240).run()
at.text_input(key="player_name").input("No Torch")
at.selectbox(key="map_name").select({map!r})
at.number_input(key="rounds").set_value(2)
at.button[0].click().run()
rounds = []
for number in (1, 2):
    play = at.session_state["play"]
    at.session_state["map_guess"] = (45.0, 16.0)  # what the map's Guess button sends
    at.run()
    assert not at.exception and not at.error, [e.value for e in (*at.exception, *at.error)]
    result = play.last_result
    rounds.append({{"place": result.place.location_id,
                   "guesses": {{w: [g.lat, g.lon] for w, g in result.guesses.items() if w != "person"}}}})
    if number == 1:
        at.button(key=f"next-{{play.map_key}}").click().run()
print(json.dumps({{"torch": "torch" in sys.modules, "rounds": rounds}}))
"""


@pytest.mark.slow
def test_the_game_serves_rounds_from_the_file_without_torch(published, shared_data, tmp_path):
    env = {**os.environ, **game_environment(shared_data, tmp_path), "GEOAI_MODELS_DIR": str(published["models"]),
           "GEOAI_SALIENCY": "on-request"}
    script = GAME_SCRIPT.format(repo=str(REPO), main=str(REPO / "app" / "main.py"), map=GAME_MAP)
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["torch"] is False, "serving a round imported torch"
    file = PredictionFile(published["file"])
    places = {p.location_id: p for p in published["places"]}
    assert len(report["rounds"]) == 2
    for played in report["rounds"]:
        assert set(played["guesses"]) == set(GAME_BUNDLES)
        for name, guess in played["guesses"].items():
            stored = file.lookup(name, weights_digest(published["models"] / name), places[played["place"]])
            assert guess == [stored.lat, stored.lon]


def test_a_retrained_bundle_plays_live_never_the_stale_answer(published, tmp_path, caplog):
    from safetensors.numpy import load_file, save_file

    models = copy_models(published, tmp_path)
    retrained = models / "tiny-resnet-linear"
    weights = load_file(str(retrained / "head.safetensors"))
    save_file({k: (v * 1.5 + 0.1).astype(v.dtype) for k, v in weights.items()}, str(retrained / "head.safetensors"))
    place = published["places"][0]
    opponent = info(models, retrained.name)
    stale = PredictionFile(published["file"]).lookup(retrained.name, weights_digest(published["models"] / retrained.name),
                                                     place)
    players = ModelPlayers(models_dir=models)
    with single_torch_thread(), caplog.at_level(logging.INFO, logger="app.players"):
        assert players.warm_up([opponent], GAME_MAP, published["places"]) == {}
        answer = players.predictions([opponent], place)[opponent.name]
        live = ModelPlayers().predictions([opponent], place)[opponent.name]
    assert "made by other weights" in caplog.text and "plays live" in caplog.text
    assert (answer.lat, answer.lon) == pytest.approx((live.lat, live.lon), abs=1e-4)
    assert abs(answer.lat - stale.lat) + abs(answer.lon - stale.lon) > 1e-3  # the file's answer was not used


def test_a_changed_place_is_answered_live_and_loads_the_model_only_then(published, caplog):
    players = ModelPlayers(models_dir=published["models"])
    opponent = info(published["models"], "tiny-beit-linear")
    places = list(published["places"])
    moved = places[1] = dataclasses.replace(places[1], lat=places[1].lat + 0.5)  # the dataset changed here
    with single_torch_thread(), caplog.at_level(logging.INFO, logger="app.players"):
        assert players.warm_up([opponent], GAME_MAP, places) == {}
        assert "another version of map" in caplog.text and f"{len(places) - 1} of {len(places)}" in caplog.text
        assert players.predictions([opponent], places[0])[opponent.name] is not None
        assert not players._bundles, "a place in the file loaded the model"
        answer = players.predictions([opponent], moved)[opponent.name]
        assert players._bundles, "the changed place was answered without the model"
    live = ModelPlayers().predictions([opponent], moved)[opponent.name]
    assert (answer.lat, answer.lon) == pytest.approx((live.lat, live.lon), abs=1e-4)


def test_a_damaged_file_is_reported_and_the_models_play_live(published, tmp_path, caplog):
    models = copy_models(published, tmp_path)
    path = predictions_path(models, GAME_MAP)
    path.write_bytes(b"not a database at all " * 100)
    opponent = info(models, "tiny-beit-linear")
    players = ModelPlayers(models_dir=models)
    with single_torch_thread(), caplog.at_level(logging.INFO, logger="app.players"):
        assert players.warm_up([opponent], GAME_MAP, published["places"]) == {}
        answer = players.predictions([opponent], published["places"][0])[opponent.name]
    assert "are not used" in caplog.text and str(path) in caplog.text
    assert players._bundles and answer is not None
    with pytest.raises(PredictionsError, match="not a predictions file"):
        write_predictions(path, GAME_MAP, "x", "d", "f", [])


def test_no_file_means_live_models_with_a_hint(published, tmp_path, caplog):
    models = copy_models(published, tmp_path)
    predictions_path(models, GAME_MAP).unlink()
    players = ModelPlayers(models_dir=models)
    with single_torch_thread(), caplog.at_level(logging.INFO, logger="app.players"):
        assert players.warm_up([info(models, "tiny-beit-linear")], GAME_MAP, published["places"]) == {}
    assert "play live" in caplog.text and "python -m train publish" in caplog.text
    assert players._bundles


def test_write_and_read_round_trip_keeps_other_bundles(tmp_path, published):
    path = tmp_path / "predictions" / "m.sqlite"
    places = published["places"][:3]
    cells = ((45.5, 15.25, 0.5), (44.0, 16.0, 0.25))
    write_predictions(path, "m", "a", "d1", "f", [(p, PlacePrediction(1.0, 2.0, cells)) for p in places], head="geocell")
    write_predictions(path, "m", "b", "d2", "f", [(places[0], PlacePrediction(3.0, 4.0))])
    write_predictions(path, "m", "b", "d3", "f", [(places[1], PlacePrediction(5.0, 6.0))])  # b republished
    file = PredictionFile(path)
    assert file.lookup("a", "d1", places[2]) == PlacePrediction(1.0, 2.0, cells)
    assert file.lookup("a", "other digest", places[2]) is None
    assert file.lookup("b", "d3", places[0]) is None  # b's older rows are gone
    assert file.lookup("b", "d3", places[1]) == PlacePrediction(5.0, 6.0)
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.sqlite"]  # no staging debris
    changed = dataclasses.replace(places[2], image_paths=places[2].image_paths[:-1])  # a view removed
    assert place_digest(changed) != place_digest(places[2]) and file.lookup("a", "d1", changed) is None


@pytest.mark.parametrize("name", ["", "..", "a/b", ".hidden"])
def test_map_names_that_are_not_folder_names_are_refused(name, tmp_path):
    with pytest.raises(PredictionsError, match="is not a map name"):
        predictions_path(tmp_path, name)


def _fake_run(tmp_path: Path, published, data: Path) -> Path:
    """A finished run folder whose results.json lists the two game bundles."""
    run = tmp_path / "run"
    rows = []
    for name, backbone in zip(GAME_BUNDLES, ("tiny-beit", "tiny-resnet")):
        shutil.copytree(published["models"] / name, run / "bundles" / name)
        rows.append({"id": name, "backbone": backbone, "head": "linear-haversine", "bundle": f"bundles/{name}",
                     "metrics": {"val": {"mean_km": 100.0}}})
    (run / "results.json").write_text(json.dumps({"dataset": {"name": GAME_MAP, "root": str(data)}, "results": rows}))
    return run


def test_publish_writes_the_maps_predictions_file(published, shared_data, tmp_path, capsys):
    run = _fake_run(tmp_path, published, shared_data / GAME_MAP)
    models = tmp_path / "models"
    with single_torch_thread():
        assert main(["publish", str(run), "--models-dir", str(models)]) == 0
    out, err = capsys.readouterr()
    places = len(published["places"])
    assert f"answers for {places} test places -> {predictions_path(models, GAME_MAP)}" in out
    assert f"predicting {GAME_MAP}: {GAME_MAP}-tiny-beit: {places}/{places} places" in err
    file = PredictionFile(predictions_path(models, GAME_MAP))
    assert sorted(file.bundles) == [f"{GAME_MAP}-tiny-beit", f"{GAME_MAP}-tiny-resnet"]
    for name, entry in file.bundles.items():
        assert entry.digest == weights_digest(models / name) and entry.places == places
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the predictions folder is not mistaken for a broken bundle
        assert [p.name for p in discover_bundles(models)] == sorted(file.bundles)


def test_publish_without_the_dataset_says_what_to_do(published, tmp_path, capsys):
    run = _fake_run(tmp_path, published, tmp_path / "moved-away")
    assert main(["publish", str(run), "--models-dir", str(tmp_path / "models")]) == 1
    err = capsys.readouterr().err
    assert "pass --data DIR" in err and "--no-predictions" in err and "Traceback" not in err
    assert not (tmp_path / "models").exists()  # nothing half-published
    assert main(["publish", str(run), "--models-dir", str(tmp_path / "models"), "--no-predictions"]) == 0
    assert len(discover_bundles(tmp_path / "models")) == 2
    assert not predictions_path(tmp_path / "models", GAME_MAP).exists()


@pytest.mark.slow
def test_serve_memory_benchmark_reports_both_modes(published, shared_data, tmp_path, monkeypatch, capsys):
    from geoai.bench.__main__ import main as bench_main

    for key, value in game_environment(shared_data, tmp_path).items():
        monkeypatch.setenv(key, value)
    assert bench_main(["serve-memory", "--models", str(published["models"]), "--map", GAME_MAP, "--rounds", "1"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    modes = {row["mode"]: row for row in report["modes"]}
    assert modes["precomputed"]["torch_imported"] is False and modes["live"]["torch_imported"] is True
    for row in modes.values():
        assert row["rounds"] == 1 and row["rss_after_mib"] > 0 and row["guess_to_result_p50_ms"] > 0


@pytest.mark.slow
def test_where_they_looked_loads_the_models_only_when_asked(published, shared_data, tmp_path, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from test_app_play import MAIN, guess, no_errors, start

    for key, value in {**game_environment(shared_data, tmp_path), "GEOAI_MODELS_DIR": str(published["models"]),
                       "GEOAI_SALIENCY": "on-request"}.items():
        monkeypatch.setenv(key, value)
    st.cache_resource.clear()
    st.cache_data.clear()
    try:
        at = AppTest.from_file(MAIN, default_timeout=300).run()
        start(at, "Curious", rounds=1)
        guess(at, 45.0, 16.0)
        no_errors(at)
        from app import resources

        players = resources.model_players()
        assert not players._bundles  # answered from the file
        overlays = [i for i in at.get("image") if any(c.startswith("View") for c in i.captions)]
        assert not overlays
        show = next(b for b in at.button if b.label == "Show where they looked")
        with single_torch_thread():
            show.click().run()
        no_errors(at)
        overlays = [i for i in at.get("image") if any(c.startswith("View") for c in i.captions)]
        views = len(at.session_state["play"].last_result.place.image_paths)
        assert sum(len(i.value) for i in overlays) == 2 * views  # both models, every view
        assert len(players._bundles) == 2
    finally:
        st.cache_resource.clear()
        st.cache_data.clear()


@pytest.mark.slow
def test_where_they_looked_is_drawn_after_every_round_by_default(published, shared_data, tmp_path, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from test_app_play import MAIN, guess, no_errors, start

    for key, value in {**game_environment(shared_data, tmp_path), "GEOAI_MODELS_DIR": str(published["models"])}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("GEOAI_SALIENCY", raising=False)
    st.cache_resource.clear()
    st.cache_data.clear()
    try:
        at = AppTest.from_file(MAIN, default_timeout=300).run()
        start(at, "Eager", rounds=1)
        with single_torch_thread():
            guess(at, 45.0, 16.0)
        no_errors(at)
        assert not any(b.label == "Show where they looked" for b in at.button)
        overlays = [i for i in at.get("image") if any(c.startswith("View") for c in i.captions)]
        views = len(at.session_state["play"].last_result.place.image_paths)
        assert sum(len(i.value) for i in overlays) == 2 * views  # both models, every view, no click
    finally:
        st.cache_resource.clear()
        st.cache_data.clear()


def test_predictions_for_a_map_played_with_bundles_trained_elsewhere(published, shared_data, tmp_path, capsys):
    models = copy_models(published, tmp_path)
    # Models trained on Croatia never play a world map: they cover none of its places.
    assert main(["predictions", str(shared_data / "osv5m-mapillary"), "--models-dir", str(models)]) == 1
    assert "covers map osv5m-mapillary" in capsys.readouterr().err
    (tmp_path / "maps").mkdir()
    other = tmp_path / "maps" / "osv5m-mapillary"  # another map of the same country, under a world map's name
    other.symlink_to(shared_data / GAME_MAP, target_is_directory=True)
    with single_torch_thread():
        assert main(["predictions", str(other), "--models-dir", str(models)]) == 0
    out = capsys.readouterr().out
    name = load_map(other).name
    places = load_map(other).places
    file = PredictionFile(predictions_path(models, name))
    assert file.map_name == name
    assert set(GAME_BUNDLES) <= set(file.bundles)  # the two the game plays there, one per family
    assert all(e.places == len(places) and e.fingerprint == split_fingerprint(places) for e in file.bundles.values())
    assert f"tiny-beit-linear: answers for {len(places)} test places" in out
    players = ModelPlayers(models_dir=models)
    opponents = [info(models, n) for n in GAME_BUNDLES]
    assert players.warm_up(opponents, name, places) == {} and not players._bundles
    assert set(players.predictions(opponents, places[0])) == set(GAME_BUNDLES) and not players._bundles
    assert main(["predictions", str(tmp_path / "no-such-map"), "--models-dir", str(models)]) == 1
    assert "no-such-map" in capsys.readouterr().err


def test_republishing_refreshes_other_maps_answers_or_says_how(published, shared_data, tmp_path, capsys):
    from safetensors.numpy import load_file, save_file

    run = _fake_run(tmp_path, published, shared_data / GAME_MAP)
    models = tmp_path / "models"
    other = tmp_path / "maps" / "osv5m-mapillary"  # a link, so the test can take the map away
    other.parent.mkdir()
    other.symlink_to(shared_data / "osv5m-mapillary", target_is_directory=True)
    head = run / "bundles" / "tiny-resnet-linear" / "head.safetensors"
    with single_torch_thread():
        assert main(["publish", str(run), "--models-dir", str(models)]) == 0
        assert main(["predictions", str(other), "--all", "--models-dir", str(models)]) == 0
        save_file({k: v * 2 for k, v in load_file(str(head)).items()}, str(head))  # retrained
        assert main(["publish", str(run), "--models-dir", str(models)]) == 0
    bundle = models / f"{GAME_MAP}-tiny-resnet"
    for name in (GAME_MAP, "osv5m-mapillary"):  # both maps answer with the new weights
        assert PredictionFile(predictions_path(models, name)).bundles[bundle.name].digest == weights_digest(bundle)
    assert "predicting osv5m-mapillary" in capsys.readouterr().err
    other.unlink()
    save_file({k: v * 2 for k, v in load_file(str(head)).items()}, str(head))
    with single_torch_thread():
        assert main(["publish", str(run), "--models-dir", str(models)]) == 0
    err = capsys.readouterr().err
    assert "by their former weights" in err and "python -m train predictions" in err


def test_an_open_file_follows_a_republished_one(tmp_path, published):
    path = tmp_path / "predictions" / "m.sqlite"
    place = published["places"][0]
    write_predictions(path, "m", "a", "old weights", "f", [(place, PlacePrediction(1.0, 2.0))])
    file = PredictionFile(path)  # as a running game holds it
    assert file.lookup("a", "old weights", place) == PlacePrediction(1.0, 2.0)
    write_predictions(path, "m", "a", "new weights", "f", [(place, PlacePrediction(3.0, 4.0))])  # publish again
    assert file.lookup("a", "old weights", place) is None
    assert file.lookup("a", "new weights", place) == PlacePrediction(3.0, 4.0)
    path.unlink()
    with pytest.raises(PredictionsError, match="is gone"):
        file.lookup("a", "new weights", place)
