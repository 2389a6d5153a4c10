"""Streamlit AppTest of what a player sees after guessing and at the end of a game: the
belief map and top guesses of a classifier, the regression sentence, where each model
looked over every view, the recap with its chart, formatted numbers, attribution, and
photos that reach the browser without EXIF."""
from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from app import formatting
from app.messages import without_paths
from result_support import EXIF_MAP, classifier_models_dir, write_exif_map
from table_support import tables
from test_app_play import MAIN, no_errors, start
from test_game_support import app_environment, game_environment


@pytest.fixture
def result_env(shared_data, tmp_path, monkeypatch):
    env = {**game_environment(shared_data, tmp_path), "GEOAI_MODELS_DIR": str(classifier_models_dir(shared_data))}
    with app_environment(monkeypatch, env):
        yield tmp_path


@pytest.fixture
def sent_media(monkeypatch):
    """Every file Streamlit hands to the browser (images included), as bytes."""
    sent: list[tuple[bytes, str]] = []
    original = MemoryMediaFileStorage.load_and_get_id

    def spy(self, path_or_data, mimetype, kind, filename=None):
        data = path_or_data if isinstance(path_or_data, bytes) else open(path_or_data, "rb").read()
        sent.append((data, mimetype))
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", spy)
    return sent


def guess_once(at: AppTest, lat: float = 45.0, lon: float = 16.0) -> None:
    at.session_state["map_guess"] = (lat, lon)  # what the map's Guess button sends
    at.run()
    no_errors(at)


def captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption]


def test_result_shows_belief_and_where_each_model_looked(result_env):
    at = AppTest.from_file(MAIN, default_timeout=300).run()
    start(at, "Ana", rounds=2)
    guess_once(at)
    play = at.session_state["play"]
    place = play.last_result.place

    # The scores come first, then the panel.
    subheaders = [s.value for s in at.subheader]
    assert subheaders.index("What the models believed") > subheaders.index("Round 1: the photo was taken here")
    assert "Where they looked" in subheaders

    # The classifier (CNN, geocell head): a heatmap of its cells and its top 3 with probabilities.
    decks = [json.loads(json.loads(c.proto.json)["deck"]) for c in at.get("bidi_component")
             if "deck" in json.loads(c.proto.json or "{}")]
    heat = [layer for deck in decks for layer in deck["layers"] if layer["@@type"] == "HeatmapLayer"]
    assert len(heat) == 1 and len(heat[0]["data"]) >= 3
    weights = [point["w"] for point in heat[0]["data"]]
    assert all(0 <= w <= 1 for w in weights) and sum(weights) <= 1 + 1e-6
    top = next(t for t in tables(at) if "probability" in t)
    assert list(top["rank"]) == [1, 2, 3]
    shares = [float(p.rstrip("%").lstrip("<")) for p in top["probability"]]
    assert shares == sorted(shares, reverse=True) and all(p.endswith("%") for p in top["probability"])
    assert all(d.endswith(" km") for d in top["from the truth"])
    # The regression model (transformer, linear head) is said to give a single point.
    assert any("single point" in c for c in captions(at))

    # Where it looked: one overlay per view for each model, each explained in words.
    strips = [i for i in at.get("image") if any(c.startswith("View") for c in i.captions)]
    views = len(place.image_paths)
    assert sum(len(i.value) for i in strips) == 2 * views  # 2 models x views
    assert any(c.startswith("Grad-CAM") for c in captions(at))
    assert any(c.startswith("Attention rollout") for c in captions(at))


def test_insight_is_cached_per_photo(result_env):
    at = AppTest.from_file(MAIN, default_timeout=300).run()
    start(at, "Ana", rounds=1)
    guess_once(at)
    from app import insight, resources

    service = insight.service(resources.model_players())
    drawn = len(service.cache)
    assert drawn == 2 * len(at.session_state["play"].last_result.place.image_paths)
    at.run()  # the same result drawn again: nothing recomputed
    assert len(service.cache) == drawn
    assert all(f.done() and not f.exception() for f in service._pending.values())


def test_final_recap_every_round_with_chart(result_env):
    at = AppTest.from_file(MAIN, default_timeout=300).run()
    start(at, "Ana", rounds=3)
    play = at.session_state["play"]
    for number in range(3):
        guess_once(at, 44.5 + number * 0.3, 15.5 + number * 0.3)
        if number < 2:
            at.button(key=f"next-{play.map_key}").click().run()
    assert at.header[0].value == "Final score"
    recap = next(d.value for d in at.dataframe if "photo" in d.value)
    assert list(recap["round"]) == [1, 2, 3]
    for photo in recap["photo"]:  # a real thumbnail of the round's photo
        assert photo.startswith("data:image/jpeg;base64,")
        Image.open(io.BytesIO(base64.b64decode(photo.split(",", 1)[1]))).verify()
    names = ["Ana", "tiny-beit-linear · transformer", "tiny-resnet · CNN"]  # the labels people read
    for result, (_, row) in zip(play.game.results, recap.iterrows()):
        for who, guess in result.guesses.items():
            name = play.game.display_name(who)
            assert name in names
            assert row[name] == f"{formatting.km(guess.distance_km)} · {formatting.points(guess.points)} pts"
    chart = at.get("vega_lite_chart")
    assert chart, "no points chart"
    spec = json.loads(chart[0].proto.spec)
    assert spec["title"] == "Points per round"
    assert spec["encoding"]["color"]["scale"]["domain"] == names
    # The last round's own result and what the models believed are still shown.
    assert "Where they looked" in [s.value for s in at.subheader]


def test_browser_gets_photos_without_exif_and_with_attribution(result_env, sent_media, monkeypatch):
    maps = result_env / "maps"
    write_exif_map(maps / EXIF_MAP)
    raw = (maps / EXIF_MAP / "images" / "p0_0.jpg").read_bytes()
    assert Image.open(io.BytesIO(raw)).getexif().get_ifd(0x8825)  # the files do carry GPS
    at = AppTest.from_file(MAIN, default_timeout=300).run()
    at.text_input(key="player_name").input("Ana")
    at.selectbox(key="map_name").select(EXIF_MAP)
    at.number_input(key="rounds").set_value(1)
    at.button[0].click().run()
    no_errors(at)
    assert [c for i in at.get("image") for c in i.captions] == ["View 1", "View 2"]
    assert "Photos: Test Camera Club · CC-BY-SA 4.0 (test photographers)" in captions(at)
    guess_once(at, 44.0, 15.0)
    images = [data for data, mimetype in sent_media if mimetype.startswith("image/")]
    assert len(images) >= 2 + 2 * 2  # the round's views, then both models' overlays
    for data in images:
        assert b"Exif" not in data[:4096] and b"GPS" not in data
        assert not Image.open(io.BytesIO(data)).getexif()


def test_messages_never_show_server_paths(result_env, monkeypatch):
    monkeypatch.setenv("GEOAI_DATA_DIR", str(result_env / "empty"))
    at = AppTest.from_file(MAIN, default_timeout=120).run()
    assert "No maps found" in at.error[0].value and str(result_env) not in at.error[0].value
    assert without_paths("no map called 'x' in /srv/geoai/data") == "no map called 'x' in …/data"
    assert without_paths("sqlite:///srv/db/geoai.sqlite is read-only") == "…/geoai.sqlite is read-only"
    assert without_paths("round 1/5 at 50 km/h") == "round 1/5 at 50 km/h"


@pytest.mark.parametrize(("value", "text"), [(0.04, "0.0 km"), (133.2, "133.2 km"), (133.25001, "133.3 km"),
                                             (999.94, "999.9 km"), (4583.3, "4,583 km"), (None, "-")])
def test_km_has_at_most_one_decimal(value, text):
    assert formatting.km(value) == text


@pytest.mark.parametrize(("value", "text"), [(0, "0"), (4999, "4,999"), (12345, "12,345"), (12345.6, "12,346")])
def test_points_have_thousands_separators(value, text):
    assert formatting.points(value) == text


def test_models_page_numbers_are_formatted(result_env):
    script = f"""
import sys
sys.path.insert(0, {str(MAIN.rsplit('/app/', 1)[0])!r})
from app import page_models
page_models.render()
"""
    at = AppTest.from_string(script, default_timeout=120).run()
    no_errors(at)
    frames = at.dataframe
    assert frames, "no model tables"
    # The Styler's display values are what the browser shows.
    shown = [frame.proto.arrow_data.styler.display_values for frame in frames]
    assert all(shown), "tables are not formatted"
    assert not any(str(result_env) in c for c in captions(at))


def test_views_credited_differently_carry_their_credit_under_each_photo():
    def strip():
        import io

        from PIL import Image

        from app.photos import show_strip
        photos = []
        for colour in ((200, 0, 0), (0, 200, 0)):
            out = io.BytesIO()
            Image.new("RGB", (32, 24), colour).save(out, "JPEG")
            photos.append(out.getvalue())
        show_strip(photos, ["Commons · Ana / CC BY-SA 4.0", "Commons · Ben / CC0"])

    at = AppTest.from_function(strip).run()
    assert [c for i in at.get("image") for c in i.captions] == [
        "View 1: Commons · Ana / CC BY-SA 4.0", "View 2: Commons · Ben / CC0"]
