"""A person's own photo: checked, its GPS read, its metadata stripped, kept only on request.

No Streamlit here. `read_upload` turns the uploaded bytes into an `UploadedPhoto` (the
pixels re-encoded as a JPEG without EXIF or any other metadata, and the EXIF GPS position
when there is one) or raises UploadError with a message a person can act on.
"""
from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from geoai.atomic import atomic_path
from geoai.data import ImageError, open_image
from geoai.geodesy import is_valid_position
from geoai.settings import uploads_dir

MAX_UPLOAD_MB = 15
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024 * 1024
MAX_PIXELS = 40_000_000  # a 40-megapixel photo; more is a decompression bomb or not a photo
FORMATS = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WEBP"}  # what PIL finds inside, not the name
EXTENSIONS = ("jpg", "jpeg", "png", "webp")
MAX_KEPT_PHOTOS = 500
SHOWN_QUALITY = 90
GPS_IFD, GPS_LAT_REF, GPS_LAT, GPS_LON_REF, GPS_LON = 0x8825, 1, 2, 3, 4


class UploadError(ValueError):
    """An upload that cannot be used; the message says why in plain words."""


@dataclass(frozen=True)
class UploadedPhoto:
    image: Image.Image  # upright RGB pixels
    jpeg: bytes  # the pixels re-encoded, with no metadata: what is shown, explained and kept
    gps: tuple[float, float] | None  # (lat, lon) from EXIF, None when absent or unusable

    @property
    def digest(self) -> str:
        from geoai.explain import photo_digest  # geoai.explain imports torch: not at the game's start

        return photo_digest(self.jpeg)


def read_upload(name: str, data: bytes) -> UploadedPhoto:
    """Check and decode an uploaded file; UploadError says what is wrong with it."""
    if not data:
        raise UploadError(f"{name} is empty.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(f"{name} is {len(data) / 1024 / 1024:.1f} MB; photos up to {MAX_UPLOAD_MB} MB "
                          "are accepted.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:  # header only: the format, before any decoding
                kind = probe.format
    except Image.DecompressionBombError as exc:
        raise UploadError(_too_many_pixels(name)) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        kind = None
    if kind not in FORMATS:
        found = f" (it is {kind})" if kind else ""
        raise UploadError(f"{name} is not a JPEG, PNG or WEBP photo{found}. Please upload one of those.")
    try:
        image = open_image(io.BytesIO(data), max_pixels=MAX_PIXELS, label=name)
    except ImageError as exc:
        if exc.kind == "image_too_large":
            raise UploadError(_too_many_pixels(name)) from exc
        raise UploadError(f"{name} is damaged or incomplete and cannot be read. Please try another "
                          "photo.") from exc
    with Image.open(io.BytesIO(data)) as original:
        gps = exif_gps(original)
    return UploadedPhoto(image=image, jpeg=stripped_jpeg(image), gps=gps)


def _too_many_pixels(name: str) -> str:
    return f"{name} has too many pixels: photos up to {MAX_PIXELS // 1_000_000} megapixels are accepted."


def stripped_jpeg(image: Image.Image) -> bytes:
    """The pixels alone as a JPEG: no EXIF (GPS, camera, time), no XMP, no comments."""
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=SHOWN_QUALITY)
    return out.getvalue()


def exif_gps(image: Image.Image) -> tuple[float, float] | None:
    """(lat, lon) degrees from an image's EXIF GPS block; None when absent, damaged or 0, 0."""
    try:
        gps = image.getexif().get_ifd(GPS_IFD)
        lat = _degrees(gps[GPS_LAT], gps.get(GPS_LAT_REF, "N"), "S")
        lon = _degrees(gps[GPS_LON], gps.get(GPS_LON_REF, "E"), "W")
    except (KeyError, TypeError, ValueError, ZeroDivisionError, OSError, SyntaxError, AttributeError):
        return None
    if not is_valid_position(lat, lon) or (lat == 0 and lon == 0):
        return None  # out of range, or the 0, 0 cameras write without a satellite fix
    return lat, lon


def _degrees(value, ref, negative: str) -> float:
    """Degrees from EXIF's (degrees, minutes, seconds) rationals and an N/S/E/W reference."""
    parts = [float(Fraction(str(v))) if not isinstance(v, (int, float)) else float(v) for v in value]
    if len(parts) != 3:
        raise ValueError("EXIF GPS coordinates need degrees, minutes and seconds")
    degrees = parts[0] + parts[1] / 60 + parts[2] / 3600
    ref = ref.decode(errors="ignore") if isinstance(ref, bytes) else str(ref)
    return -degrees if ref.strip().upper().startswith(negative) else degrees


def keep_photo(photo: UploadedPhoto, folder: Path | None = None, max_photos: int = MAX_KEPT_PHOTOS) -> Path:
    """Store the stripped JPEG as <digest>.jpg (the same photo twice is stored once).

    Bounded: past max_photos nothing more is stored (UploadError), nothing is deleted.
    """
    folder = folder or uploads_dir()
    target = folder / f"{photo.digest}.jpg"
    if target.is_file():
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if sum(1 for _ in folder.glob("*.jpg")) >= max_photos:
            raise UploadError(f"the photo store is full ({max_photos} photos), so this one was not kept.")
        with atomic_path(target) as partial:
            partial.write_bytes(photo.jpeg)
    except OSError as exc:
        raise UploadError(f"the photo could not be kept ({exc.strerror or 'storage error'}).") from exc
    return target
