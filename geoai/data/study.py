"""Importer for the study's dataset: place folders "<square_id>,<lat>,<lon>" (in a zip or
a folder) holding three views and/or `glued.jpg` (the three side by side), plus the
annotation CSV `path,square_id,lat,lon`. It writes the image-folder layout that
`load_image_folder` reads, one group per place so that splits never separate its views.
"""
from __future__ import annotations

import io
import math
import re
import shutil
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal

import pandas as pd
from PIL import Image
from tqdm import tqdm

from geoai.countries import country_codes
from geoai.data.dataset import GeoDataset
from geoai.data.errors import DatasetError, ImageError, Problem
from geoai.data.folder import (IMAGE_SUFFIXES, METADATA_FILE, STUDY_COLUMNS, has_study_columns,
                               load_image_folder, parse_coordinate)
from geoai.data.images import DEFAULT_MAX_PIXELS, check_image, open_image

GLUED_STEM = "glued"
VIEWS_PER_GLUED = 3  # headings 0-120, 120-240, 240-360
MAX_MEMBER_BYTES = 256 * 1024 * 1024  # no street-view image is this big; refuse zip bombs
COORD_TOLERANCE_DEG = 1e-7  # ~1 cm: folder name and CSV are the same numbers printed twice
JPEG_QUALITY = 95
OUTPUT_COLUMNS = ["file_name", "lat", "lon", "location_id", "heading", "country", "square_id",
                  "source", "original_file"]

OnError = Literal["raise", "skip"]


# ---------------------------------------------------------------- annotations

def parse_place_name(name: str) -> tuple[str, float, float] | None:
    """(square_id, lat, lon) from a folder name "<square_id>,<lat>,<lon>", else None."""
    parts = name.split(",")
    if len(parts) != 3 or not parts[0].strip():
        return None
    try:
        lat, lon = float(parts[1]), float(parts[2])
    except ValueError:
        return None
    return parts[0].strip(), lat, lon


def place_of(path: str) -> str:
    """The place folder name of an annotation path ("<place>/glued.jpg", either slash)."""
    return PurePosixPath(path.replace("\\", "/")).parent.name


def read_study_annotations(csv_path: str | Path, *, on_error: OnError = "raise") -> pd.DataFrame:
    """Read and validate the study's annotation CSV (path,square_id,lat,lon).

    Returns one row per place: path, square_id (str), lat, lon (float64), place (folder
    name), row (1-based CSV row). Checks coordinates, that the folder name agrees with
    square_id/lat/lon, and duplicates. on_error="raise" raises DatasetError listing every
    problem; "skip" drops bad rows and keeps the problems in `frame.attrs["problems"]`.
    """
    csv_path = Path(csv_path)
    frame, problems = validate_study_annotations(_read_annotation_file(csv_path))
    if problems and on_error == "raise":
        raise DatasetError(problems, source=csv_path)
    frame.attrs["problems"] = problems
    return frame


def _read_annotation_file(csv_path: Path) -> pd.DataFrame:
    if not csv_path.is_file():
        raise DatasetError([Problem("missing_file", f"annotation file {csv_path} not found")])
    with csv_path.open("rb") as fh:
        return _read_annotation_table(fh, str(csv_path))


def _read_annotation_table(fh: BinaryIO, source: str) -> pd.DataFrame:
    try:
        table = pd.read_csv(fh, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise DatasetError([Problem("empty_metadata", "the annotation file is empty")],
                           source=source) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DatasetError([Problem("bad_csv", f"cannot be parsed as CSV ({exc})")],
                           source=source) from None
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in STUDY_COLUMNS if c not in table.columns]
    if missing:
        raise DatasetError([Problem(
            "missing_column", f"required column(s) {', '.join(missing)} missing; found columns: "
            f"{', '.join(table.columns) or '(none)'}; a study annotation file has "
            f"{', '.join(STUDY_COLUMNS)}")], source=source)
    if table.empty:
        raise DatasetError([Problem("empty_metadata", "has a header but no data rows")],
                           source=source)
    return table


def validate_study_annotations(table: pd.DataFrame) -> tuple[pd.DataFrame, list[Problem]]:
    """Check an annotation table (all str cells); return (valid rows, problems)."""
    rows, problems = [], []
    first_row_of: dict[str, int] = {}
    for index, path, square, raw_lat, raw_lon in zip(
            range(len(table)), table["path"], table["square_id"], table["lat"], table["lon"],
            strict=True):
        row = index + 1
        found: list[Problem] = []
        lat, lat_reason = parse_coordinate(raw_lat, "latitude", 90.0)
        lon, lon_reason = parse_coordinate(raw_lon, "longitude", 180.0)
        found += [Problem("bad_coordinate", r, row, path or None) for r in (lat_reason, lon_reason) if r]
        if not square.strip():
            found.append(Problem("empty_group_key", "square_id is empty", row, path or None))
        place = place_of(path) if path.strip() else ""
        parsed = parse_place_name(place)
        if parsed is None:
            found.append(Problem("bad_path", "path should be '<square_id>,<lat>,<lon>/glued.jpg'",
                                 row, path or None))
        else:
            mismatches = []
            if parsed[0] != square.strip():
                mismatches.append(f"square_id {square!r} but folder says {parsed[0]!r}")
            if lat is not None and not math.isclose(parsed[1], lat, abs_tol=COORD_TOLERANCE_DEG):
                mismatches.append(f"lat {raw_lat} but folder says {parsed[1]!r}")
            if lon is not None and not math.isclose(parsed[2], lon, abs_tol=COORD_TOLERANCE_DEG):
                mismatches.append(f"lon {raw_lon} but folder says {parsed[2]!r}")
            if mismatches:
                found.append(Problem("name_mismatch", "annotation disagrees with its folder name: "
                                     + "; ".join(mismatches), row, path))
            elif place in first_row_of:
                found.append(Problem("duplicate_path", f"same place as row {first_row_of[place]}",
                                     row, path))
            else:
                first_row_of[place] = row
        if found:
            problems += found
        else:
            rows.append({"path": path, "square_id": square.strip(), "lat": lat, "lon": lon,
                         "place": place, "row": row})
    frame = pd.DataFrame(rows, columns=["path", "square_id", "lat", "lon", "place", "row"])
    frame = frame.astype({"lat": "float64", "lon": "float64", "row": "int64"})
    return frame, problems


def annotations_from_folder_names(places: list[str]) -> pd.DataFrame:
    """Annotation table derived from place folder names, when no CSV is given or found."""
    rows = []
    for place in sorted(places):
        square, lat, lon = parse_place_name(place)  # type: ignore[misc]
        rows.append({"path": f"{place}/{GLUED_STEM}.jpg", "square_id": square,
                     "lat": repr(lat), "lon": repr(lon)})
    return pd.DataFrame(rows, columns=list(STUDY_COLUMNS))


# ---------------------------------------------------------------- sources

@dataclass
class _Source:
    """Files of a zip or a folder, by relative posix name, read without extracting."""

    label: str
    names: list[str]
    _zip: zipfile.ZipFile | None = None
    _root: Path | None = None
    sizes: dict[str, int] = field(default_factory=dict)

    def read(self, name: str) -> bytes:
        """The member's bytes; ImageError ("unreadable_image") if a damaged zip entry or
        an unreadable file keeps it from being read."""
        try:
            if self._zip is not None:
                with self._zip.open(name) as fh:
                    return fh.read(MAX_MEMBER_BYTES + 1)
            return (self._root / name).read_bytes()  # type: ignore[operator]
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise ImageError(f"cannot be read from {self.label} ({exc})",
                             kind="unreadable_image", path=name) from exc


@contextmanager
def _open_source(src: Path) -> Iterator[_Source]:
    if src.is_dir():
        names = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
        sizes = {n: (src / n).stat().st_size for n in names}
        yield _Source(label=str(src), names=names, _root=src, sizes=sizes)
        return
    if not zipfile.is_zipfile(src):
        raise DatasetError([Problem("bad_source", f"{src} is neither a folder nor a zip file")])
    with zipfile.ZipFile(src) as archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        yield _Source(label=str(src), names=[i.filename for i in infos], _zip=archive,
                      sizes={i.filename: i.file_size for i in infos})


def _is_junk(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return any((p.startswith(".") and p not in (".", "..")) or p == "__MACOSX" for p in parts)


def _index_places(source: _Source) -> tuple[dict[str, list[str]], list[Problem]]:
    """Place folder name -> its image members; problems for a place found twice."""
    places: dict[str, list[str]] = {}
    parent_of: dict[str, str] = {}
    problems = []
    for name in source.names:
        path = PurePosixPath(name)
        if _is_junk(name) or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        place = path.parent.name
        if parse_place_name(place) is None:
            continue
        parent = str(path.parent)
        if parent_of.setdefault(place, parent) != parent:
            problems.append(Problem("duplicate_place", f"place folder {place!r} appears twice "
                                    f"({parent_of[place]} and {parent})", file_name=name))
            continue
        places.setdefault(place, []).append(name)
    return places, problems


def _find_annotations(source: _Source) -> pd.DataFrame | None:
    candidates: dict[str, bytes] = {}
    for name in source.names:
        if _is_junk(name) or not name.lower().endswith(".csv"):
            continue
        try:
            data = source.read(name)
        except ImageError as exc:
            raise DatasetError([Problem("bad_csv", exc.reason, file_name=name)],
                               source=source.label) from None
        header = data.split(b"\n", 1)[0].decode("utf-8-sig", "replace")
        if has_study_columns(header.strip().split(",")):
            candidates[name] = data
    if not candidates:
        return None
    if len(candidates) > 1:
        raise DatasetError([Problem("ambiguous_annotations", "several annotation CSVs found ("
                                    + ", ".join(candidates) + "); choose one with --annotations")],
                           source=source.label)
    [(name, data)] = candidates.items()
    return _read_annotation_table(io.BytesIO(data), f"{source.label}:{name}")


# ---------------------------------------------------------------- import

def import_study(src: str | Path, out: str | Path, *, annotations: str | Path | None = None,
                 on_error: OnError = "raise", progress: bool = False,
                 max_image_pixels: int = DEFAULT_MAX_PIXELS) -> GeoDataset:
    """Convert the study's dataset (zip or folder) into an image folder at `out`.

    Writes out/images/<place index>/<view>.jpg and out/metadata.csv (file_name, lat, lon,
    location_id = place folder name, heading = view index 0/1/2, country, square_id,
    source, original_file). A glued.jpg is cut into three equal-width views unless the
    folder holds the separate views. annotations: the CSV (path,square_id,lat,lon); if
    None, a CSV with those columns inside src, else the folder names. on_error="raise"
    raises DatasetError listing every problem and leaves nothing behind; "skip" drops bad
    places and returns them in `.problems`. `out` must be absent or empty.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    src, out = Path(src).expanduser(), Path(out).expanduser()
    if not src.exists():
        raise DatasetError([Problem("missing_folder", f"study source {src} does not exist")])
    if out.exists() and not out.is_dir():
        raise DatasetError([Problem("output_not_folder", f"output {out} is a file, not a "
                                    "folder; choose a new folder")])
    if out.exists() and any(out.iterdir()):
        raise DatasetError([Problem("output_not_empty", f"output folder {out} exists and is "
                                    "not empty; choose a new folder")])

    with _open_source(src) as source:
        places, problems = _index_places(source)
        if annotations is not None:
            raw = _read_annotation_file(Path(annotations))
        else:
            raw = _find_annotations(source)
        if raw is None:
            raw = annotations_from_folder_names(list(places))
            if raw.empty:
                raise DatasetError([Problem("no_places", "no place folders "
                                            "'<square_id>,<lat>,<lon>' with images found")],
                                   source=src)
        table, found = validate_study_annotations(raw)
        problems += found
        created = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
        try:
            records, write_problems = _write_places(source, table, places, out, progress,
                                                    max_image_pixels)
            problems += write_problems
            # Places named by any row, valid or not: a rejected row is reported once, as such.
            annotated = {place_of(p) for p in raw["path"]}
            problems += [Problem("unannotated_place", "place folder has no annotation row",
                                 file_name=place) for place in sorted(set(places) - annotated)]
            if problems and on_error == "raise":
                raise DatasetError(problems, source=src)
            if not records:
                raise DatasetError(problems or [Problem("no_places", "nothing to import")],
                                   source=src)
            _write_metadata(records, out, source_label=src.name)
        except BaseException:
            _remove_output(out, created)
            raise
    dataset = load_image_folder(out, check_images="header", max_image_pixels=max_image_pixels)
    dataset.problems = problems
    return dataset


def _write_places(source: _Source, table: pd.DataFrame, places: dict[str, list[str]], out: Path,
                  progress: bool, max_pixels: int) -> tuple[list[dict], list[Problem]]:
    records: list[dict] = []
    problems: list[Problem] = []
    width = max(5, len(str(len(table))))
    for place_index, ann in enumerate(tqdm(table.itertuples(index=False), total=len(table),
                                           desc="importing places", unit="place",
                                           disable=not progress)):
        members = places.get(ann.place)
        if not members:
            problems.append(Problem("missing_file", f"no images for place {ann.place!r} in the "
                                    "source", row=ann.row, file_name=ann.path))
            continue
        folder = f"images/{place_index:0{width}d}"
        try:
            views = list(_place_views(source, members, max_pixels))
        except ImageError as exc:
            problems.append(Problem(exc.kind, f"image {exc.path} {exc.reason}", row=ann.row,
                                    file_name=ann.path))
            continue
        (out / folder).mkdir(parents=True, exist_ok=True)
        for heading, (member, suffix, write) in enumerate(views):
            file_name = f"{folder}/{heading}{suffix}"
            write(out / file_name)
            records.append({"file_name": file_name, "lat": ann.lat, "lon": ann.lon,
                            "location_id": ann.place, "heading": str(heading),
                            "square_id": ann.square_id, "original_file": member})
    return records, problems


def _place_views(source: _Source, members: list[str], max_pixels: int):
    """(member, suffix, writer) per view: the separate views if present, else glued thirds."""
    for member in members:
        if source.sizes.get(member, 0) > MAX_MEMBER_BYTES:
            raise ImageError(f"is over {MAX_MEMBER_BYTES // 2**20} MiB", kind="image_too_large",
                             path=member)
    separate = [m for m in members if PurePosixPath(m).stem.lower() != GLUED_STEM]
    if separate:
        for member in sorted(separate, key=_natural_key):
            data = source.read(member)
            check_image(io.BytesIO(data), level="full", max_pixels=max_pixels, label=member)
            suffix = PurePosixPath(member).suffix.lower()
            yield member, suffix, (lambda dest, data=data: dest.write_bytes(data))
        return
    glued = members[0]
    image = open_image(io.BytesIO(source.read(glued)), max_pixels=max_pixels, label=glued)
    for view in split_glued(image, label=glued):
        yield glued, ".jpg", (lambda dest, view=view: view.save(dest, "JPEG", quality=JPEG_QUALITY))


def split_glued(image: Image.Image, *, label: str = "glued.jpg",
                views: int = VIEWS_PER_GLUED) -> list[Image.Image]:
    """Cut a side-by-side image into `views` equal-width crops, left to right.

    A remainder of width % views pixels (at most 2) is dropped from the right edge.
    """
    width, height = image.size
    if width < views:
        raise ImageError(f"is {width} px wide, too narrow to hold {views} views",
                         kind="unreadable_image", path=label)
    step = width // views
    return [image.crop((i * step, 0, (i + 1) * step, height)) for i in range(views)]


def _natural_key(name: str) -> tuple:
    stem = PurePosixPath(name).stem
    return (0, float(stem), stem) if re.fullmatch(r"-?\d+(\.\d+)?", stem) else (1, 0.0, stem)


def _write_metadata(records: list[dict], out: Path, source_label: str) -> None:
    frame = pd.DataFrame(records)
    frame["country"] = country_codes(frame[["lat", "lon"]].to_numpy())
    frame["source"] = f"study import ({source_label})"
    tmp = out / (METADATA_FILE + ".tmp")
    frame[OUTPUT_COLUMNS].to_csv(tmp, index=False)
    tmp.replace(out / METADATA_FILE)  # metadata appears only once every image is written


def _remove_output(out: Path, created: bool) -> None:
    """Undo a failed import: `out` was absent or empty, so all it holds is ours."""
    if created:
        shutil.rmtree(out, ignore_errors=True)
    elif out.is_dir():
        for child in out.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
