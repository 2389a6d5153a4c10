"""Generators of small fake and broken datasets for the geoai.data tests (all in tmp_path)."""
from __future__ import annotations

import csv
import io
import struct
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

HEADER = ["file_name", "lat", "lon", "location_id", "heading", "country"]
# Shared image folders -> (images, groups, countries), groups counted from each metadata.csv
# (the data README says 82 groups for streetview-world-tiles and 13 for commons-cities).
SHARED_DATASETS = {
    "croatia-streetview": (400, 100, 3),
    "streetview-world-tiles": (404, 81, 36),
    "im2gps3k": (1937, 132, 94),
    "osv5m-mapillary": (71, 71, 48),
    "commons-cities": (133, 12, 12),
}
THIRD_COLOURS = ((220, 30, 30), (30, 200, 30), (30, 30, 220))  # red, green, blue thirds


def jpeg_bytes(size: tuple[int, int] = (48, 32), colour: tuple[int, int, int] | None = None,
               seed: int = 0) -> bytes:
    """A JPEG: flat colour, or noise (noise makes truncation land inside pixel data)."""
    if colour is not None:
        image = Image.new("RGB", size, colour)
    else:
        pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def write_jpeg(path: Path, size: tuple[int, int] = (48, 32), colour=None, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg_bytes(size, colour, seed))
    return path


def write_truncated_jpeg(path: Path) -> Path:
    """A JPEG cut in the middle of its pixel data: the header reads fine, decoding fails."""
    data = jpeg_bytes((128, 96), seed=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) // 2])
    return path


def write_bomb_png(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb)."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)  # IHDR width, height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # IHDR CRC stays valid
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    return path


def write_metadata(root: Path, rows: Iterable[Sequence], header: Sequence[str] = HEADER) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "metadata.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def make_good_folder(root: Path, places: int = 4, views: int = 2) -> Path:
    """A valid image folder: `places` groups of `views` small JPEGs each."""
    rows = []
    for p in range(places):
        for v in range(views):
            name = f"images/p{p}_{v}.jpg"
            write_jpeg(root / name, seed=p * 10 + v)
            rows.append([name, f"{45 + p * 0.5}", f"{15 + p * 0.25}", f"{p:04d}", str(v * 90), "HR"])
    write_metadata(root, rows)
    return root


def glued_bytes(size: tuple[int, int] = (96, 32), colours=THIRD_COLOURS) -> bytes:
    """A glued image: three equal-width thirds of distinct colours, side by side."""
    width, height = size
    image = Image.new("RGB", size)
    third = width // 3
    for i, colour in enumerate(colours):
        image.paste(colour, (i * third, 0, (i + 1) * third, height))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def build_study_folder(root: Path, annotation_paths: Iterable[str]) -> Path:
    """Write a generated glued.jpg at each annotation path under root (the unzipped layout)."""
    for rel in annotation_paths:
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(glued_bytes())
    return root


def zip_folder(folder: Path, zip_path: Path, prefix: str = "") -> Path:
    """Zip every file of `folder` (names under `prefix`/ if given)."""
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                archive.write(file, (f"{prefix}/" if prefix else "") + file.relative_to(folder).as_posix())
    return zip_path


def mean_colour(path: Path) -> tuple[float, float, float]:
    with Image.open(path) as image:
        return tuple(np.asarray(image.convert("RGB"), dtype=float).reshape(-1, 3).mean(axis=0))
