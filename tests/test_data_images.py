"""open_image / check_image: one clear ImageError per way an image file can be bad."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from fixtures_data import write_bomb_png, write_jpeg, write_truncated_jpeg
from geoai.data import ImageError, check_image, open_image


def test_open_image_returns_decoded_rgb(tmp_path):
    path = tmp_path / "grey.png"
    Image.new("L", (20, 10), 128).save(path)
    image = open_image(path)
    assert image.mode == "RGB" and image.size == (20, 10)
    assert image.getpixel((0, 0)) == (128, 128, 128)


def test_open_image_applies_exif_orientation(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.new("RGB", (40, 20), (10, 200, 10)).save(path, exif=exif)
    assert open_image(path).size == (20, 40)


def test_open_image_reads_a_file_object():
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, "PNG")
    buffer.seek(0)
    assert open_image(buffer).getpixel((3, 3)) == (1, 2, 3)


@pytest.mark.parametrize("make, kind, words", [
    (lambda d: d / "absent.jpg", "missing_file", "not found"),
    (lambda d: (d / "notes.jpg").write_text("hello") and d / "notes.jpg", "not_an_image", "not an image"),
    (lambda d: (d / "empty.jpg").write_bytes(b"") or d / "empty.jpg", "not_an_image", "0 bytes"),
    (lambda d: write_truncated_jpeg(d / "cut.jpg"), "truncated_image", "truncated"),
    (lambda d: write_bomb_png(d / "bomb.png"), "image_too_large", "too large"),
])
def test_open_image_errors_say_what_is_wrong(tmp_path, make, kind, words):
    path = make(tmp_path)
    with pytest.raises(ImageError) as info:
        open_image(path)
    assert info.value.kind == kind
    assert words in str(info.value) and path.name in str(info.value)


def test_header_check_passes_truncated_file_but_full_check_fails(tmp_path):
    path = write_truncated_jpeg(tmp_path / "cut.jpg")
    check_image(path, level="header")
    with pytest.raises(ImageError, match="truncated"):
        check_image(path, level="full")


def test_pixel_limit_is_checked_from_the_header(tmp_path):
    path = write_jpeg(tmp_path / "big.jpg", size=(100, 50))
    check_image(path, max_pixels=5000)
    with pytest.raises(ImageError) as info:
        check_image(path, max_pixels=4999)
    assert info.value.kind == "image_too_large" and "100x50" in str(info.value)


def test_bomb_below_pil_limit_is_caught_by_our_limit(tmp_path):
    # 8000x8000 = 64 M pixels: under PIL's own bomb error threshold, over our 50 M default.
    path = write_bomb_png(tmp_path / "bomb.png", 8000, 8000)
    with pytest.raises(ImageError, match="64,000,000 pixels"):
        check_image(path, level="header")
