"""Streamlit AppTest of the "Your photo" page: a photo with EXIF GPS makes the person guess
first and scores all three; without GPS only the models answer; bad files get a plain
message; the browser and the store only ever get the photo without its metadata."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from app.game import distance_km
from result_support import classifier_models_dir, jpeg_with_gps
from table_support import tables
from test_game_support import app_environment, game_environment

REPO = Path(__file__).resolve().parents[1]
PAGE = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from app import page_upload
page_upload.render()
"""
ZAGREB = (45.8150, 15.9819)


@pytest.fixture
def upload_env(shared_data, tmp_path, monkeypatch):
    env = {**game_environment(shared_data, tmp_path), "GEOAI_MODELS_DIR": str(classifier_models_dir(shared_data)),
           "GEOAI_UPLOADS_DIR": str(tmp_path / "kept")}
    with app_environment(monkeypatch, env):
        yield tmp_path


@pytest.fixture
def sent_images(monkeypatch):
    sent: list[bytes] = []
    original = MemoryMediaFileStorage.load_and_get_id

    def spy(self, path_or_data, mimetype, kind, filename=None):
        if mimetype.startswith("image/"):
            sent.append(path_or_data if isinstance(path_or_data, bytes) else Path(path_or_data).read_bytes())
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", spy)
    return sent


def page() -> AppTest:
    return AppTest.from_string(PAGE, default_timeout=300).run()


def upload(at: AppTest, name: str, data: bytes, mime: str = "image/jpeg") -> AppTest:
    at.get("file_uploader")[0].set_value((name, data, mime))
    return at.run()


def texts(at: AppTest, kind: str) -> list[str]:
    return [e.value for e in getattr(at, kind)]


def no_exif(data: bytes) -> bool:
    return b"Exif" not in data[:4096] and not Image.open(io.BytesIO(data)).getexif()


def test_gps_photo_person_guesses_first_then_all_three_are_scored(upload_env, sent_images):
    at = page()
    assert not at.exception
    upload(at, "holiday.jpg", jpeg_with_gps((90, 120, 160), *ZAGREB, size=(640, 480)))
    assert not at.exception and not at.error, texts(at, "error")
    assert any("carries its GPS position" in t for t in texts(at, "info"))
    assert not [t for t in tables(at) if "distance (km)" in t]  # no scores before the person guesses
    assert "What the models believed" not in texts(at, "subheader")  # nor the models' beliefs
    assert not (upload_env / "kept").exists() or not any((upload_env / "kept").iterdir())  # nothing kept

    at.session_state["upload_guess"] = (45.0, 16.0)
    at.run()
    assert not at.exception and not at.error, texts(at, "error")
    table = next(t for t in tables(at) if "distance (km)" in t)
    players = list(table["player"])
    assert players[0] == "You" and players[1].endswith(" · transformer") and players[2].endswith(" · CNN")
    # the distance as the page writes it: one decimal
    assert table["distance (km)"].iloc[0] == pytest.approx(distance_km((45.0, 16.0), ZAGREB), abs=0.051)
    assert table["points"].between(0, 5000).all()
    closest = [m for m in texts(at, "markdown") if m.startswith("Closest:")]
    assert closest and closest[0].endswith(" km)")
    # The guess stays once made (a rerun does not ask again), and both models are explained.
    assert "Where they looked" in texts(at, "subheader")
    assert sent_images and all(no_exif(data) for data in sent_images)


def test_photo_without_gps_is_guessed_by_the_models_only(upload_env):
    at = page()
    out = io.BytesIO()
    Image.new("RGB", (400, 300), (40, 140, 60)).save(out, "PNG")
    upload(at, "garden.png", out.getvalue(), "image/png")
    assert not at.exception and not at.error, texts(at, "error")
    assert any("no GPS position" in t for t in texts(at, "info"))
    table = next(t for t in tables(at) if "model" in t)
    assert len(table) == 2 and all("°" in g for g in table["guess"])
    assert not [t for t in tables(at) if "distance (km)" in t]
    assert "What the models believed" in texts(at, "subheader")


def test_keeping_the_photo_stores_it_without_metadata_only_when_asked(upload_env):
    at = page()
    at.checkbox(key="upload_keep").check()
    upload(at, "holiday.jpg", jpeg_with_gps((90, 120, 160), *ZAGREB))
    kept = list((upload_env / "kept").glob("*.jpg"))
    assert len(kept) == 1 and no_exif(kept[0].read_bytes())
    assert any("is kept" in c for c in texts(at, "caption"))


def bad_files() -> list[tuple[str, bytes, str]]:
    gif = io.BytesIO()
    Image.new("RGB", (20, 20)).save(gif, "GIF")
    good = io.BytesIO()
    Image.effect_noise((400, 300), 60).convert("RGB").save(good, "JPEG")
    huge = io.BytesIO()
    Image.new("L", (8000, 6000)).save(huge, "PNG")  # 48 megapixels of one grey: a small file
    return [("big.jpg", b"\xff\xd8" + bytes(16 * 1024 * 1024), "photos up to 15 MB"),
            ("cat.jpg", gif.getvalue(), "is not a JPEG, PNG or WEBP photo (it is GIF)"),
            ("broken.jpg", good.getvalue()[:len(good.getvalue()) * 3 // 5], "damaged or incomplete"),
            ("wide.png", huge.getvalue(), "too many pixels")]


@pytest.mark.parametrize(("name", "data", "message"), bad_files(), ids=lambda v: v if isinstance(v, str) else "")
def test_bad_files_get_a_plain_message(upload_env, name, data, message):
    at = page()
    upload(at, name, data)
    assert not at.exception
    errors = texts(at, "error")
    assert len(errors) == 1 and message in errors[0] and name in errors[0]
    assert str(upload_env) not in errors[0] and "/" not in errors[0]
    assert not at.get("image")  # nothing shown
