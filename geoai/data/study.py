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
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal

import pandas as pd
from PIL import Image

from geoai.atomic import atomic_path
from geoai.countries import country_codes
from geoai.data.dataset import GeoDataset
from geoai.data.errors import DatasetError, ImageError, Problem
from geoai.data.folder import (IMAGE_SUFFIXES, METADATA_FILE, STUDY_COLUMNS, has_study_columns,
                               load_image_folder, parse_coordinate)
from geoai.data.images import DEFAULT_MAX_PIXELS, check_image, open_image
from geoai.progress import progress_bar

GLUED_STEM = "glued"
VIEWS_PER_GLUED = 3  # headings 0-120, 120-240, 240-360
MAX_MEMBER_BYTES = 64 * 2**20  # no street-view image is this big; refuse zip bombs
COORD_TOLERANCE_DEG = 1e-7  # ~1 cm: folder name and CSV are the same numbers printed twice
JPEG_QUALITY = 95
OUTPUT_COLUMNS = ["file_name", "lat", "lon", "location_id", "heading", "country", "square_id",
                  "source", "original_file"]

OnError = Literal["raise", "skip"]


# ---------------------------------------------------------------- annotations

def parse_place_name(name: str) -> tuple[str, float, float] | None:
    """(square_id, lat, lon) from a folder name "<square_id>,<lat>,<lon>", else None.

    The numbers follow the metadata's strict rule (plain ASCII decimals, in range)."""
    if place_name_problem(name) is not None:
        return None
    square, raw_lat, raw_lon = name.split(",")
    return square.strip(), float(raw_lat), float(raw_lon)


def place_name_problem(name: str) -> str | None:
    """Why a folder name is not "<square_id>,<lat>,<lon>", or None if it is."""
    parts = name.split(",")
    if len(parts) != 3:
        return f"{len(parts) - 1} comma(s) instead of 2" if name else "no folder"
    if not parts[0].strip():
        return "square_id is empty"
    _, lat_reason = parse_coordinate(parts[1], "latitude")
    _, lon_reason = parse_coordinate(parts[2], "longitude")
    return lat_reason or lon_reason


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
        lat, lat_reason = parse_coordinate(raw_lat, "latitude")
        lon, lon_reason = parse_coordinate(raw_lon, "longitude")
        found += [Problem("bad_coordinate", r, row, path or None) for r in (lat_reason, lon_reason) if r]
        if not square.strip():
            found.append(Problem("empty_group_key", "square_id is empty", row, path or None))
        place = place_of(path) if path.strip() else ""
        parsed = parse_place_name(place)
        if parsed is None:
            if not found:  # an out-of-range coordinate is already reported, once
                found.append(Problem("bad_path", "path should be '<square_id>,<lat>,<lon>/glued.jpg'"
                                     f" ({place_name_problem(place)})", row, path or None))
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


# ---------------------------------------------------------------- limits

@dataclass(frozen=True)
class ImportLimits:
    """What an import may read, checked before reading (declared sizes) and while reading
    (actual bytes): a zip's directory can lie, and a few KiB can expand to gigabytes."""

    max_entries: int = 500_000  # the study's zip has ~90,000 (17,600 places x 4 images + folders)
    max_entry_bytes: int = MAX_MEMBER_BYTES
    max_total_bytes: int = 64 * 2**30  # the study's images are ~10 GiB
    max_ratio: float = 100.0  # photos barely compress; zeros compress ~1000:1

    def __post_init__(self) -> None:
        if min(self.max_entries, self.max_entry_bytes, self.max_total_bytes) < 1 or self.max_ratio < 1:
            raise ValueError(f"import limits must be positive (ratio at least 1): {self}")


SMALL_ENTRY_BYTES = 1 * 2**20  # below this, a high compression ratio costs nothing
MAX_BYTES_PER_PIXEL = 8  # 16-bit RGBA, uncompressed: anything bigger is padding, not picture
METADATA_ALLOWANCE = 4 * 2**20  # EXIF, ICC profiles, thumbnails
COPY_CHUNK = 1 * 2**20
ZIP_ENCRYPTED_FLAG = 0x1
READABLE_COMPRESSIONS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB" if n < 2**30 else f"{n / 2**30:,.2f} GiB"


# ---------------------------------------------------------------- sources

@dataclass(frozen=True)
class _Entry:
    name: str
    size: int  # declared (zip directory) or on-disk size
    compressed: int | None = None  # zip only
    unreadable: str | None = None  # why it cannot be read at all (encrypted, compression)


@dataclass
class _Source:
    """Files of a zip or a folder, by relative posix name, streamed without extracting.

    Every read is checked against `limits`: the declared size, the compression ratio, and
    the bytes actually read, which must equal the declared size.
    """

    label: str
    entries: dict[str, _Entry]
    limits: ImportLimits
    _zip: zipfile.ZipFile | None = None
    _root: Path | None = None
    duplicates: list[str] = field(default_factory=list)  # names a zip holds twice
    bytes_read: int = 0

    @property
    def names(self) -> list[str]:
        return list(self.entries)

    def check(self, name: str) -> _Entry:
        """The entry, or ImageError if it must not be read (before reading a byte)."""
        entry = self.entries[name]
        if entry.unreadable:
            kind = "encrypted_entry" if "encrypted" in entry.unreadable else "unsupported_compression"
            raise ImageError(entry.unreadable, kind=kind, path=name)
        if entry.size > self.limits.max_entry_bytes:
            raise ImageError(f"is {_mib(entry.size)} uncompressed, over the "
                             f"{_mib(self.limits.max_entry_bytes)} limit per entry",
                             kind="entry_too_large", path=name)
        if (entry.compressed is not None and entry.size > SMALL_ENTRY_BYTES
                and entry.size > self.limits.max_ratio * max(entry.compressed, 1)):
            raise ImageError(f"expands {entry.size / max(entry.compressed, 1):,.0f} times "
                             f"({_mib(entry.compressed)} to {_mib(entry.size)}): a zip bomb or a "
                             "padded file, not a photo", kind="zip_bomb", path=name)
        return entry

    def _open(self, name: str) -> BinaryIO:
        if self._zip is not None:
            return self._zip.open(name)
        return (self._root / name).open("rb")  # type: ignore[operator]

    def stream_to(self, name: str, sink: BinaryIO) -> int:
        """Copy the entry into `sink` in chunks; its byte count, which must match the
        declared size. ImageError for a damaged, lying or over-limit entry."""
        entry = self.check(name)
        read = 0
        try:
            with self._open(name) as fh:
                while chunk := fh.read(COPY_CHUNK):
                    read += len(chunk)
                    if read > entry.size:
                        raise ImageError(f"holds more than its declared {entry.size:,} bytes",
                                         kind="size_mismatch", path=name)
                    self._count(len(chunk))
                    sink.write(chunk)
        except ImageError:
            raise
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error, RuntimeError,
                NotImplementedError, ValueError) as exc:
            raise ImageError(f"cannot be read from {self.label} ({exc})",
                             kind="unreadable_image", path=name) from exc
        if read != entry.size:
            raise ImageError(f"declares {entry.size:,} bytes but holds {read:,}",
                             kind="size_mismatch", path=name)
        return read

    def _count(self, n: int) -> None:
        self.bytes_read += n
        if self.bytes_read > self.limits.max_total_bytes:
            raise DatasetError([Problem("too_large", f"has read over {_mib(self.limits.max_total_bytes)}, "
                                        "the limit for one import")], source=self.label)

    def read(self, name: str) -> bytes:
        """The whole entry in memory (annotation CSVs), within the per-entry limit."""
        buffer = io.BytesIO()
        self.stream_to(name, buffer)
        return buffer.getvalue()

    def first_line(self, name: str, limit: int = 64 * 1024) -> bytes:
        """The first line of an entry (a CSV's header), reading at most `limit` bytes."""
        self.check(name)
        try:
            with self._open(name) as fh:
                return fh.read(limit).split(b"\n", 1)[0]
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error, RuntimeError,
                NotImplementedError, ValueError) as exc:
            raise ImageError(f"cannot be read from {self.label} ({exc})",
                             kind="unreadable_image", path=name) from exc


def _zip_entry(info: zipfile.ZipInfo) -> _Entry:
    unreadable = None
    if info.flag_bits & ZIP_ENCRYPTED_FLAG:
        unreadable = "is encrypted (password-protected); unzip it with its password and import the folder"
    elif info.compress_type not in READABLE_COMPRESSIONS:
        method = zipfile.compressor_names.get(info.compress_type, f"method {info.compress_type}")
        unreadable = (f"uses {method} compression, which Python's zipfile cannot read; re-zip it "
                      "with ordinary deflate (or unzip it and import the folder)")
    return _Entry(info.filename, info.file_size, info.compress_size, unreadable)


@contextmanager
def _open_source(src: Path, limits: ImportLimits) -> Iterator[_Source]:
    if src.is_dir():
        entries = {}
        for path in sorted(src.rglob("*")):
            if path.is_file():
                if len(entries) >= limits.max_entries:
                    raise _too_many_entries(src, limits)
                name = path.relative_to(src).as_posix()
                entries[name] = _Entry(name, path.stat().st_size)
        yield _Source(label=str(src), entries=entries, limits=limits, _root=src)
        return
    try:
        archive = zipfile.ZipFile(src) if zipfile.is_zipfile(src) else None
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError) as exc:
        raise DatasetError([Problem("bad_source", f"{src} cannot be read as a zip ({exc})")]) from None
    if archive is None:
        raise DatasetError([Problem("bad_source", f"{src} is neither a folder nor a zip file")])
    with archive:
        infos = archive.infolist()
        if len(infos) > limits.max_entries:
            raise _too_many_entries(src, limits, len(infos))
        entries: dict[str, _Entry] = {}
        duplicates = []
        for info in infos:
            if info.is_dir():
                continue
            if info.filename in entries:
                duplicates.append(info.filename)
            entries[info.filename] = _zip_entry(info)
        _refuse_unreadable_zip(src, list(entries.values()))
        yield _Source(label=str(src), entries=entries, limits=limits, _zip=archive,
                      duplicates=duplicates)


def _too_many_entries(src: Path, limits: ImportLimits, count: int | None = None) -> DatasetError:
    found = f"{count:,} entries" if count else f"over {limits.max_entries:,} files"
    return DatasetError([Problem("too_many_entries", f"{src} has {found}, over the limit of "
                                 f"{limits.max_entries:,} for one import")])


def _refuse_unreadable_zip(src: Path, entries: list[_Entry]) -> None:
    """One clear error when nothing in the zip can be read for the same reason
    (a password-protected or deflate64 zip), instead of one problem per entry."""
    data = [e for e in entries if not _is_junk(e.name)]
    reasons = {e.unreadable for e in data}
    if data and len(reasons) == 1 and None not in reasons:
        what = "encrypted (password-protected)" if "encrypted" in str(data[0].unreadable) else "unreadable"
        kind = "encrypted_zip" if what.startswith("encrypted") else "unsupported_compression"
        raise DatasetError([Problem(kind, f"all {len(data):,} entries of {src} are {what}: "
                                    f"{data[0].unreadable}")])


def _is_junk(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return any((p.startswith(".") and p not in (".", "..")) or p == "__MACOSX" for p in parts)


def _index_places(source: _Source) -> tuple[dict[str, list[str]], list[str], list[Problem]]:
    """Place folder name -> its image members, the CSVs, and a problem for every entry that
    will not be imported: images outside a well-named place folder (one problem per
    folder), places found twice, files that are neither images nor CSVs. Hidden files and
    macOS `__MACOSX` metadata are not data and are ignored."""
    places: dict[str, list[str]] = {}
    parent_of: dict[str, str] = {}
    badly_named: dict[str, list[str]] = {}
    csvs: list[str] = []
    problems = [Problem("duplicate_entry", "the zip holds this name twice; only the last is read",
                        file_name=name) for name in source.duplicates]
    for name in source.names:
        path = PurePosixPath(name)
        if _is_junk(name):
            continue
        suffix = path.suffix.lower()
        if suffix == ".csv":
            csvs.append(name)
            continue
        if suffix not in IMAGE_SUFFIXES:
            problems.append(Problem("skipped_entry", "neither an image nor a CSV; not imported",
                                    file_name=name))
            continue
        place = path.parent.name
        if place_name_problem(place) is not None:
            badly_named.setdefault(str(path.parent), []).append(name)
            continue
        parent = str(path.parent)
        if parent_of.setdefault(place, parent) != parent:
            problems.append(Problem("duplicate_place", f"place folder {place!r} appears twice "
                                    f"({parent_of[place]} and {parent})", file_name=name))
            continue
        places.setdefault(place, []).append(name)
    for folder, names in badly_named.items():
        place = PurePosixPath(folder).name
        count = f"its {len(names)} image(s)" if len(names) > 1 else "its image"
        if folder in ("", "."):
            message = f"image outside any place folder '<square_id>,<lat>,<lon>'; not imported"
        else:
            message = (f"folder name is not '<square_id>,<lat>,<lon>' ({place_name_problem(place)}); "
                       f"{count} not imported")
        problems.append(Problem("bad_place_name", message,
                                file_name=folder if folder not in ("", ".") else names[0]))
    return places, csvs, problems


def _find_annotations(source: _Source, csvs: list[str]) -> tuple[pd.DataFrame | None, list[Problem]]:
    """The study annotation CSV inside the source, if any; other CSVs are reported as skipped."""
    candidates: list[str] = []
    problems: list[Problem] = []
    for name in csvs:
        try:
            header = source.first_line(name).decode("utf-8-sig", "replace")
        except ImageError as exc:
            problems.append(Problem("bad_csv", f"{exc.reason}; not read", file_name=name))
            continue
        if has_study_columns(header.strip().split(",")):
            candidates.append(name)
        else:
            problems.append(Problem("skipped_entry", "CSV without the columns "
                                    f"{','.join(STUDY_COLUMNS)}; not read", file_name=name))
    if not candidates:
        return None, problems
    if len(candidates) > 1:
        raise DatasetError([Problem("ambiguous_annotations", "several annotation CSVs found ("
                                    + ", ".join(candidates) + "); choose one with --annotations")],
                           source=source.label)
    [name] = candidates
    try:
        data = source.read(name)
    except ImageError as exc:
        raise DatasetError([Problem("bad_csv", exc.reason, file_name=name)],
                           source=source.label) from None
    return _read_annotation_table(io.BytesIO(data), f"{source.label}:{name}"), problems


def _refuse_over_total(source: _Source, names: list[str], src: Path) -> None:
    total = sum(source.entries[n].size for n in names)
    if total > source.limits.max_total_bytes:
        raise DatasetError([Problem("too_large", f"its images and annotations declare "
                                    f"{_mib(total)} uncompressed, over the limit of "
                                    f"{_mib(source.limits.max_total_bytes)} for one import "
                                    "(raise it with --max-total-gib if that is really the data)")],
                           source=src)


# ---------------------------------------------------------------- import

def import_study(src: str | Path, out: str | Path, *, annotations: str | Path | None = None,
                 on_error: OnError = "raise", progress: bool = False,
                 max_image_pixels: int = DEFAULT_MAX_PIXELS,
                 limits: ImportLimits = ImportLimits()) -> GeoDataset:
    """Convert the study's dataset (zip or folder) into an image folder at `out`.

    Writes out/images/<place index>/<view>.jpg and out/metadata.csv (file_name, lat, lon,
    location_id = place folder name, heading = view index 0/1/2, country, square_id,
    source, original_file). A glued.jpg is cut into three equal-width views unless the
    folder holds the separate views. annotations: the CSV (path,square_id,lat,lon); if
    None, a CSV with those columns inside src, else the folder names. on_error="raise"
    raises DatasetError listing every problem and leaves nothing behind; "skip" drops bad
    places and returns them in `.problems`. Every entry that is not imported is a problem.
    Views are streamed to disk one at a time within `limits`. `out` must be absent or empty.
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

    with _open_source(src, limits) as source:
        places, csvs, problems = _index_places(source)
        _refuse_over_total(source, [m for members in places.values() for m in members] + csvs, src)
        if annotations is not None:
            raw = _read_annotation_file(Path(annotations))
        else:
            raw, found = _find_annotations(source, csvs)
            problems += found
        if raw is None:
            raw = annotations_from_folder_names(list(places))
            if raw.empty:
                raise DatasetError(problems or [Problem(
                    "no_places", "no place folders '<square_id>,<lat>,<lon>' with images found")],
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
    """Each place's views written into its own folder, one at a time; a place that fails
    leaves no file behind and is reported (row, annotation path, which entry and why)."""
    records: list[dict] = []
    problems: list[Problem] = []
    width = max(5, len(str(len(table))))
    for place_index, ann in enumerate(progress_bar(table.itertuples(index=False), total=len(table),
                                                   desc="importing places", unit="place",
                                                   show=progress)):
        members = places.get(ann.place)
        if not members:
            problems.append(Problem("missing_file", f"no images for place {ann.place!r} in the "
                                    "source", row=ann.row, file_name=ann.path))
            continue
        folder = f"images/{place_index:0{width}d}"
        (out / folder).mkdir(parents=True, exist_ok=True)
        try:
            views = _write_place_views(source, members, out / folder, max_pixels)
        except ImageError as exc:
            shutil.rmtree(out / folder, ignore_errors=True)
            problems.append(Problem(exc.kind, f"image {exc.path} {exc.reason}", row=ann.row,
                                    file_name=ann.path))
            continue
        for heading, (member, file_name) in enumerate(views):
            records.append({"file_name": f"{folder}/{file_name}", "lat": ann.lat, "lon": ann.lon,
                            "location_id": ann.place, "heading": str(heading),
                            "square_id": ann.square_id, "original_file": member})
    return records, problems


def _write_place_views(source: _Source, members: list[str], folder: Path,
                       max_pixels: int) -> list[tuple[str, str]]:
    """(member, file name in `folder`) per view: the separate views if present, else the
    glued image's thirds. Every entry is checked before a byte is read."""
    for member in members:
        source.check(member)
    separate = [m for m in members if PurePosixPath(m).stem.lower() != GLUED_STEM]
    if separate:
        views = []
        for heading, member in enumerate(sorted(separate, key=_natural_key)):
            file_name = f"{heading}{PurePosixPath(member).suffix.lower()}"
            _copy_checked_image(source, member, folder / file_name, max_pixels)
            views.append((member, file_name))
        return views
    glued = members[0]
    scratch = folder / f".glued{PurePosixPath(glued).suffix.lower()}"
    _copy_checked_image(source, glued, scratch, max_pixels)
    try:
        image = open_image(scratch, max_pixels=max_pixels, label=glued)
        views = []
        for heading, view in enumerate(split_glued(image, label=glued)):
            view.save(folder / f"{heading}.jpg", "JPEG", quality=JPEG_QUALITY)
            views.append((glued, f"{heading}.jpg"))
    finally:
        scratch.unlink(missing_ok=True)
    return views


def _copy_checked_image(source: _Source, member: str, dest: Path, max_pixels: int) -> None:
    """Stream an entry to `dest`, then refuse it unless it is a whole, decodable image whose
    file size fits its pixel count (a tiny JPEG padded with megabytes is not a photo)."""
    with dest.open("wb") as sink:
        size = source.stream_to(member, sink)
    dimensions = _header_dimensions(dest)
    if dimensions is not None:
        width, height = dimensions
        allowed = width * height * MAX_BYTES_PER_PIXEL + METADATA_ALLOWANCE
        if size > allowed:
            raise ImageError(f"is {_mib(size)} for a {width}x{height} image: padded with data "
                             "that is not picture", kind="padded_image", path=member)
    check_image(dest, level="full", max_pixels=max_pixels, label=member)


def _header_dimensions(path: Path) -> tuple[int, int] | None:
    """(width, height) from the image header only, or None (check_image then says why)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                return image.size
    except Exception:  # noqa: BLE001 - any unreadable header is reported by check_image
        return None


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
    with atomic_path(out / METADATA_FILE) as tmp:  # metadata appears only once every image is written
        frame[OUTPUT_COLUMNS].to_csv(tmp, index=False)


def _remove_output(out: Path, created: bool) -> None:
    """Undo a failed import: `out` was absent or empty, so all it holds is ours."""
    if created:
        shutil.rmtree(out, ignore_errors=True)
    elif out.is_dir():
        for child in out.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
