"""The photos players see: re-encoded without metadata, laid out as a strip, with attribution.

The browser never receives a dataset file as it is on disk: every view is decoded and
re-encoded as a plain JPEG (no EXIF, XMP or comments), so a dataset whose files still
carry GPS tags cannot give the answer away. Each photo's credit (the dataset's `source`
and `license` columns) sits under the strip, as CC-BY-SA and similar licences require.
"""
from __future__ import annotations

import functools
import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import streamlit as st
from PIL import Image

from geoai.data import ImageError, open_image

log = logging.getLogger("geoai.app")
SHOWN_MAX_SIDE = 1280  # larger photos are scaled down: the strip never needs more
THUMB_MAX_SIDE = 240
JPEG_QUALITY = 88
VIEWS_PER_ROW = 5
MIN_COLUMNS = 3
ATTRIBUTION_COLUMNS = ("source", "license")
PHOTO_CACHE_SIZE = 512


class PhotoError(RuntimeError):
    """A photo that cannot be shown; the message names no server path."""


def jpeg_without_metadata(image: Image.Image, max_side: int = SHOWN_MAX_SIDE,
                          quality: int = JPEG_QUALITY) -> bytes:
    """The pixels alone as a JPEG, no larger than max_side: nothing else survives."""
    rgb = image.convert("RGB")
    if max(rgb.size) > max_side:
        rgb = rgb.copy()
        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    rgb.save(out, "JPEG", quality=quality, optimize=True)  # no exif=..., so none is written
    return out.getvalue()


def shown_jpeg(path: str, max_side: int = SHOWN_MAX_SIDE) -> bytes:
    """What the browser gets for a dataset image file (cached per file version)."""
    try:
        stat = os.stat(path)
    except OSError as exc:
        log.warning("photo %s cannot be read: %s", path, exc)
        raise PhotoError("This photo is missing on the server.") from exc
    return _shown_jpeg(path, stat.st_mtime_ns, stat.st_size, max_side)


@functools.lru_cache(maxsize=PHOTO_CACHE_SIZE)
def _shown_jpeg(path: str, mtime_ns: int, size: int, max_side: int) -> bytes:
    try:
        return jpeg_without_metadata(open_image(path), max_side)
    except ImageError as exc:
        log.warning("photo %s cannot be shown: %s", path, exc)
        raise PhotoError("This photo cannot be shown (the file is damaged or not an image).") from exc


def credit(source: object, license_text: object) -> str:
    """"source · license" from the dataset's columns, skipping empty ones."""
    parts = [str(v).strip() for v in (source, license_text)
             if v is not None and not (isinstance(v, float) and pd.isna(v)) and str(v).strip()]
    return " · ".join(parts)


@functools.lru_cache(maxsize=32)
def _credits_of_folder(folder: str, mtime_ns: int) -> dict[str, str]:
    """{image path (as the game holds it): credit} for a dataset folder with source/license columns."""
    from geoai.data import load_image_folder

    dataset = load_image_folder(Path(folder), on_error="skip", check_images="none")
    frame = dataset.frame
    present = [c for c in ATTRIBUTION_COLUMNS if c in frame]
    if not present:
        return {}
    sources = frame["source"] if "source" in frame else [None] * len(frame)
    licences = frame["license"] if "license" in frame else [None] * len(frame)
    return {str(p): credit(s, lic) for p, s, lic in zip(frame["path"], sources, licences)}


def credits_for(map_folder: Path, paths: Sequence[str]) -> list[str]:
    """Each path's credit ("" where the dataset records none)."""
    metadata = Path(map_folder) / "metadata.csv"
    try:
        table = _credits_of_folder(str(map_folder), metadata.stat().st_mtime_ns)
    except Exception as exc:  # credits are an extra: a problem is logged, the round goes on
        log.warning("attribution of %s unavailable: %s", map_folder, exc)
        table = {}
    return [table.get(str(p), "") for p in paths]


def attribution_text(credits: Sequence[str]) -> str:
    """One line when every view shares a credit, else one per view ("View 2: ...")."""
    distinct = list(dict.fromkeys(c for c in credits if c))
    if not distinct:
        return ""
    if len(distinct) == 1:
        return f"Photo: {distinct[0]}" if len(credits) == 1 else f"Photos: {distinct[0]}"
    return "  \n".join(f"View {i + 1}: {c}" for i, c in enumerate(credits) if c)


def show_strip(photos: Sequence[bytes], credits: Sequence[str] = (), *, caption_views: bool = True) -> None:
    """Every view side by side (rows of VIEWS_PER_ROW), large, with the attribution: under each
    photo when the views are credited differently, else once under the strip."""
    rows = [photos[i:i + VIEWS_PER_ROW] for i in range(0, len(photos), VIEWS_PER_ROW)]
    # At least MIN_COLUMNS columns: one or two photos stay photo-sized instead of page-wide.
    per_row = min(max(len(photos), MIN_COLUMNS), VIEWS_PER_ROW)
    each = len(set(c for c in credits if c)) > 1
    for r, row in enumerate(rows):
        cols = st.columns(per_row, gap="small")
        for c, (col, data) in enumerate(zip(cols, row)):
            number = r * VIEWS_PER_ROW + c
            label = f"View {number + 1}" if caption_views and len(photos) > 1 else ""
            if each and number < len(credits) and credits[number]:
                label = f"{label}: {credits[number]}" if label else credits[number]
            col.image(data, width="stretch", caption=label or None)
    text = "" if each else attribution_text(credits)
    if text:
        st.caption(text)


def show_place(paths: Sequence[str], map_folder: Path | None) -> None:
    """A dataset place's views as a strip with their attribution; unreadable views say so."""
    photos = []
    for path in paths:
        try:
            photos.append(shown_jpeg(path))
        except PhotoError as exc:
            st.warning(str(exc))
    if photos:
        show_strip(photos, credits_for(map_folder, paths) if map_folder else ())


def thumbnail(path: str) -> bytes | None:
    """A small metadata-free JPEG of a view, None when it cannot be read."""
    try:
        return shown_jpeg(path, THUMB_MAX_SIDE)
    except PhotoError:
        return None


def shown_or_none(path: str) -> bytes | None:
    """shown_jpeg, or None (logged) when the view cannot be read."""
    try:
        return shown_jpeg(path)
    except PhotoError:
        return None
