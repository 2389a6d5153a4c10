"""Uploaded photos: type, size and pixel limits with plain messages; EXIF GPS read, then stripped."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from app.uploads import MAX_UPLOAD_BYTES, UploadError, keep_photo, read_upload


def jpeg(gps: tuple[float, float] | None = None, size=(64, 48)) -> bytes:
    image = Image.new("RGB", size, (90, 140, 200))
    exif = Image.Exif()
    if gps:
        lat, lon = gps
        exif.get_ifd(0x8825).update({1: "N" if lat >= 0 else "S", 2: (abs(lat), 0.0, 0.0),
                                     3: "E" if lon >= 0 else "W", 4: (abs(lon), 0.0, 0.0)})
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    return out.getvalue()


def test_gps_is_read_and_stripped(tmp_path):
    photo = read_upload("trip.jpg", jpeg((45.5, -16.25)))
    assert photo.gps == pytest.approx((45.5, -16.25))
    assert not Image.open(io.BytesIO(photo.jpeg)).getexif().get_ifd(0x8825)
    kept = keep_photo(photo, tmp_path)
    assert kept.read_bytes() == photo.jpeg and read_upload("again.jpg", kept.read_bytes()).gps is None


def test_photo_without_gps():
    assert read_upload("plain.jpg", jpeg()).gps is None


@pytest.mark.parametrize("data, message", [
    (b"GIF89a" + b"\0" * 50, "not a JPEG, PNG or WEBP"),
    (b"hello, not an image", "not a JPEG, PNG or WEBP"),
    (jpeg(size=(400, 300))[:1500], "damaged or incomplete"),
    (b"\xff" * (MAX_UPLOAD_BYTES + 1), "MB; photos up to"),
])
def test_bad_uploads_get_a_plain_message(data, message):
    with pytest.raises(UploadError, match=message):
        read_upload("x.jpg", data)


def test_decompression_bomb_is_refused_from_its_header():
    out = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(out, "PNG")  # 400 megapixels in a small file
    with pytest.raises(UploadError, match="too many pixels"):
        read_upload("bomb.png", out.getvalue())
