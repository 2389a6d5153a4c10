"""Reading and validating an image folder: `DIR/metadata.csv` beside the images.

This is the Hugging Face `imagefolder` layout. Required columns: file_name, lat, lon;
optional: location_id (group key, default the file itself), heading, country; any other
column is kept. Every problem is collected (never silently dropped), then either raised
together or, with on_error="skip", reported in `GeoDataset.problems` with the row dropped.
"""
from __future__ import annotations

import csv
import io
import os
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Literal

import pandas as pd

from geoai.data.dataset import CORE_COLUMNS, GeoDataset
from geoai.data.errors import DatasetError, ImageError, Problem
from geoai.data.images import DEFAULT_MAX_PIXELS, CheckLevel, check_image
from geoai.data.splits import DEFAULT_FRACTIONS, DEFAULT_SALT, assign_splits, validate_fractions
from geoai.geodesy import LIMITS, is_valid_position
from geoai.progress import progress_bar

METADATA_FILE = "metadata.csv"
REQUIRED_COLUMNS = ("file_name", "lat", "lon")
OPTIONAL_COLUMNS = ("location_id", "heading", "country")
STUDY_COLUMNS = ("path", "square_id", "lat", "lon")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
# Columns we compute; a CSV column of the same name is kept under this prefix.
RESERVED_PREFIX = "original_"

OnError = Literal["raise", "skip"]


def load_image_folder(root: str | Path, *, on_error: OnError = "raise",
                      check_images: CheckLevel = "header",
                      split_fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
                      split_salt: str = DEFAULT_SALT,
                      max_image_pixels: int = DEFAULT_MAX_PIXELS,
                      progress: bool = False) -> GeoDataset:
    """Load and validate `root/metadata.csv` and its images.

    on_error="raise" raises DatasetError listing every problem of every row;
    on_error="skip" drops bad rows and records one Problem per finding. A missing folder,
    missing metadata.csv, unparsable CSV, missing required column or a CSV without rows
    always raises. check_images: "none", "header" (open + header: format, size, pixel
    limit) or "full" (also decode every pixel; catches truncated files).
    Splits are a function of location_id only (see geoai.data.splits).
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    if check_images not in ("none", "header", "full"):
        raise ValueError(f"check_images must be 'none', 'header' or 'full', not {check_images!r}")
    fractions = validate_fractions(split_fractions)
    root = Path(root).expanduser()
    csv_path = _metadata_path(root)
    table = read_metadata(csv_path)
    root = root.resolve()

    problems_by_row = _validate_rows(table, root)
    if check_images != "none":
        _check_image_files(table, root, problems_by_row, check_images, max_image_pixels, progress)

    problems = [p for row in sorted(problems_by_row) for p in problems_by_row[row]]
    if problems and on_error == "raise":
        raise DatasetError(problems, source=csv_path)

    good = table.drop(index=sorted(problems_by_row))
    frame = _build_frame(good, root, fractions, split_salt)
    return GeoDataset(root=root, frame=frame, problems=problems, name=root.name)


def read_metadata(csv_path: Path) -> pd.DataFrame:
    """Read metadata.csv as strings (ids like "0012" stay strings, empty cells stay '').

    A row with more or fewer values than the header is kept, padded or cut to the header,
    and its problem is in `table.attrs["row_problems"]` (row index -> message), so it is
    reported as what it is rather than as a wrong file name or coordinate. Raises
    DatasetError on an unreadable, non-UTF-8 or unparsable file, a header naming a column
    twice, missing required columns or no rows.
    """
    header, records = _read_csv_records(csv_path)
    if header is None:
        raise DatasetError([Problem("empty_metadata", "the file is empty: it has no header "
                                    "and no rows")], source=csv_path)
    columns = [c.strip() or f"Unnamed: {i}" for i, c in enumerate(header)]
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        raise DatasetError([Problem("bad_csv", f"the header names column(s) {', '.join(twice)} "
                                    "more than once")], source=csv_path)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise DatasetError([Problem(
            "missing_column",
            f"required column(s) {', '.join(missing)} missing; found columns: "
            f"{', '.join(columns) or '(none)'}; expected at least "
            f"{', '.join(REQUIRED_COLUMNS)}")], source=csv_path)
    if not records:
        raise DatasetError([Problem("empty_metadata", "has a header but no data rows")],
                           source=csv_path)
    width = len(columns)
    row_problems = {
        i: f"has {len(r)} values but the header names {width} columns; a comma or quote is "
           "missing or extra" for i, r in enumerate(records) if len(r) != width}
    table = pd.DataFrame([(r + [""] * width)[:width] for r in records], columns=columns, dtype=str)
    table.attrs["row_problems"] = row_problems
    return table


def _read_csv_records(csv_path: Path) -> tuple[list[str] | None, list[list[str]]]:
    """(header, data records) of a UTF-8 CSV, blank lines skipped; DatasetError if unreadable."""
    def bad(message: str) -> DatasetError:
        return DatasetError([Problem("bad_csv", message)], source=csv_path)

    try:
        text = csv_path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise bad(f"is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                  "save it as UTF-8") from None
    except OSError as exc:
        raise bad(f"cannot be read ({exc.strerror or exc})") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        records = [r for r in reader if r]
    except csv.Error as exc:
        raise bad(f"cannot be parsed as CSV at line {reader.line_num} ({exc}); check for "
                  "unquoted commas or quotes") from None
    return (records[0], records[1:]) if records else (None, [])


def _metadata_path(root: Path) -> Path:
    if not root.exists():
        raise DatasetError([Problem("missing_folder", f"folder {root} does not exist")])
    if not root.is_dir():
        raise DatasetError([Problem("missing_folder", f"{root} is not a folder")])
    csv_path = root / METADATA_FILE
    if csv_path.is_file():
        return csv_path
    study_csv = next((p for p in sorted(root.glob("*.csv")) if _looks_like_study_csv(p)), None)
    if study_csv is not None:
        message = (f"{root} holds no {METADATA_FILE} but {study_csv.name}, a study annotation "
                   "file (path,square_id,lat,lon) without images. Convert the study's images "
                   f"with: python -m geoai.data import-study IMAGES_ZIP_OR_FOLDER OUT "
                   f"--annotations {study_csv}")
        raise DatasetError([Problem("study_annotations_only", message)])
    raise DatasetError([Problem(
        "missing_metadata",
        f"no {METADATA_FILE} in {root}: an image folder needs {METADATA_FILE} (columns "
        "file_name, lat, lon[, location_id, heading, country]) beside its images")])


def _looks_like_study_csv(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            header = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return has_study_columns(header)


def has_study_columns(header: Sequence[str]) -> bool:
    """Whether a CSV header names every column of a study annotation file."""
    names = {h.strip() for h in header}
    return all(c in names for c in STUDY_COLUMNS)


# A plain decimal number in ASCII: sign, digits, point, exponent. No inf/nan, hex, '1_000',
# thousands or decimal commas, or non-ASCII digits, which float() would accept or misread.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_CELL_PADDING = " \t"  # what may surround a value in a cell


def parse_number(raw: str) -> float | None:
    """The value of a plain ASCII decimal number ("45.8", "-0.5", "1e-3"), else None."""
    text = raw.strip(_CELL_PADDING)
    return float(text) if _DECIMAL.fullmatch(text) else None


def parse_coordinate(raw: str, name: str) -> tuple[float | None, str | None]:
    """(value, None) for a valid coordinate, else (None, reason). `name` is "latitude"/"longitude".

    Only plain ASCII decimals are numbers (see parse_number): "45,3" gets a hint about the
    decimal point, anything else says it is not a number.
    """
    text = raw.strip(_CELL_PADDING)
    if text == "":
        return None, f"{name} is empty"
    value = parse_number(text)
    if value is None:
        hint = ("; use a point as the decimal separator" if re.fullmatch(r"[+-]?[0-9]+,[0-9]+", text)
                else "; write it as a plain decimal number like 45.81" if text.isascii() else
                "; it has non-ASCII characters, write it with ASCII digits like 45.81")
        return None, f"{name} {raw!r} is not a number{hint}"
    position = (value, 0.0) if name == "latitude" else (0.0, value)
    if not is_valid_position(*position):
        limit = LIMITS["lat" if name == "latitude" else "lon"]
        return None, f"{name} {raw} is outside [-{limit:g}, {limit:g}]"
    return value, None


def safe_relative_path(file_name: str) -> PurePosixPath | None:
    """The normalised relative path, or None if it is absolute or climbs out with '..'."""
    if PureWindowsPath(file_name).drive or file_name.startswith(("/", "\\")) or "\0" in file_name:
        return None
    parts = [p for p in file_name.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return PurePosixPath(*parts)


def _validate_rows(table: pd.DataFrame, root: Path) -> dict[int, list[Problem]]:
    """Per-row problems (keyed by table index) except image content, which is checked later.

    Rows whose file name is found only under another Unicode normalisation of the same
    text (NFC vs NFD, as macOS writes names) get `table["file_name"]` set to the name on disk.
    """
    problems: dict[int, list[Problem]] = {}
    first_row_of: dict[PurePosixPath, int] = {}
    row_problems: dict[int, str] = table.attrs.get("row_problems", {})
    names = _NameIndex(root)
    groups = table["location_id"].tolist() if "location_id" in table.columns else None

    def add(index: int, kind: str, message: str, file_name: str | None) -> None:
        problems.setdefault(index, []).append(Problem(kind, message, row=index + 1,
                                                      file_name=file_name))

    for index, file_name, raw_lat, raw_lon in zip(table.index, table["file_name"].tolist(),
                                                 table["lat"].tolist(), table["lon"].tolist(),
                                                 strict=True):
        shown = file_name or None
        if index in row_problems:  # its values sit under the wrong columns: say only that
            add(index, "bad_row", row_problems[index], shown)
            continue
        shifted = _shifted_columns(file_name, raw_lat, raw_lon)
        if shifted:
            add(index, "bad_row", shifted, shown)
            continue
        for raw, name in ((raw_lat, "latitude"), (raw_lon, "longitude")):
            _, reason = parse_coordinate(raw, name)
            if reason:
                add(index, "bad_coordinate", reason, shown)
        if groups is not None and groups[index].strip() == "":
            add(index, "empty_group_key", "location_id is empty; give every image the id "
                "of its place (or drop the column to make each image its own group)", shown)
        if file_name.strip() == "":
            add(index, "missing_file", "file_name is empty", None)
            continue
        relative = safe_relative_path(file_name)
        if relative is None:
            add(index, "unsafe_path", "path is absolute or leaves the dataset folder; "
                "file_name must be relative to the folder holding metadata.csv", shown)
            continue
        on_disk = names.find(relative)
        if on_disk is not None and on_disk != relative:
            relative = on_disk
            table.at[index, "file_name"] = str(on_disk)
        if relative in first_row_of:
            add(index, "duplicate_path", f"same file as row {first_row_of[relative] + 1}; "
                "each image must appear once", shown)
            continue
        first_row_of[relative] = index
        full = root / relative
        if on_disk is None:
            add(index, "missing_file", f"file not found at {full}", shown)
        elif not full.resolve().is_relative_to(root):
            add(index, "unsafe_path", "links to a file outside the dataset folder", shown)
        elif not full.is_file():
            add(index, "missing_file", f"{full} is not a file", shown)
    return problems


def _shifted_columns(file_name: str, raw_lat: str, raw_lon: str) -> str | None:
    """A message when a row's values look moved by one column (a number where the file name
    belongs, a file name where a coordinate belongs), else None."""
    name_is_number = parse_number(file_name) is not None
    pathlike = [c for c, v in (("lat", raw_lat), ("lon", raw_lon))
                if PurePosixPath(v.strip().replace("\\", "/")).suffix.lower() in IMAGE_SUFFIXES]
    if not (name_is_number or pathlike):
        return None
    found = ([f"file_name is the number {file_name!r}"] if name_is_number else []) + \
        [f"{c} is {v!r}" for c, v in (("lat", raw_lat), ("lon", raw_lon)) if c in pathlike]
    return ("values look shifted into the wrong columns (" + ", ".join(found) + "); the columns "
            "are file_name, lat, lon: check for a missing or extra value before them")


class _NameIndex:
    """Finds a relative path on disk, matching each part under Unicode NFC when the exact
    name is absent, so "café.jpg" typed in NFC finds the file macOS saved in NFD."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._folders: dict[Path, dict[str, str]] = {}

    def find(self, relative: PurePosixPath) -> PurePosixPath | None:
        try:
            if os.path.lexists(self.root / relative):
                return relative
        except (OSError, ValueError):  # a name too long for the file system
            return None
        folder, parts = self.root, []
        for part in relative.parts:
            actual = self._listing(folder).get(unicodedata.normalize("NFC", part))
            if actual is None:
                return None
            parts.append(actual)
            folder = folder / actual
        return PurePosixPath(*parts)

    def _listing(self, folder: Path) -> dict[str, str]:
        """NFC name -> name on disk, per folder, read once (only when an exact match failed)."""
        if folder not in self._folders:
            try:
                names = [p.name for p in folder.iterdir()]
            except OSError:
                names = []
            self._folders[folder] = {unicodedata.normalize("NFC", n): n for n in names}
        return self._folders[folder]


def _check_image_files(table: pd.DataFrame, root: Path, problems: dict[int, list[Problem]],
                       level: CheckLevel, max_pixels: int, progress: bool) -> None:
    # Only rows whose file was found and is safe; coordinate problems don't stop the check.
    file_kinds = {"missing_file", "unsafe_path", "duplicate_path", "bad_row"}
    todo = [i for i in table.index
            if not any(p.kind in file_kinds for p in problems.get(i, []))]
    for index in progress_bar(todo, desc=f"checking images ({level})", unit="img", show=progress, leave=False):
        file_name = table.at[index, "file_name"]
        try:
            check_image(root / safe_relative_path(file_name), level=level,  # type: ignore[operator]
                        max_pixels=max_pixels, label=file_name)
        except ImageError as exc:
            problems.setdefault(index, []).append(
                Problem(exc.kind, f"image {exc.reason}", row=index + 1, file_name=file_name))


def _build_frame(table: pd.DataFrame, root: Path, fractions: Sequence[float],
                 salt: str) -> pd.DataFrame:
    table = table.rename(columns={c: RESERVED_PREFIX + c for c in ("path", "split")
                                  if c in table.columns})
    out = pd.DataFrame(index=table.index)
    out["file_name"] = table["file_name"].astype(str)
    out["path"] = [str(root / safe_relative_path(f)) for f in out["file_name"]]  # type: ignore[operator]
    out["lat"] = [parse_number(v) for v in table["lat"]]
    out["lon"] = [parse_number(v) for v in table["lon"]]
    out = out.astype({"lat": "float64", "lon": "float64"})
    if "location_id" in table.columns:
        out["location_id"] = table["location_id"].astype(str)
    else:
        out["location_id"] = out["file_name"]  # each image its own group
    for column in ("heading", "country"):
        out[column] = table[column].astype(str) if column in table.columns else ""
    out["split"] = assign_splits(out["location_id"].tolist(), fractions, salt) if len(out) else []
    extras = [c for c in table.columns if c not in CORE_COLUMNS]
    out = pd.concat([out, table[extras].astype(str)], axis=1)
    return out.reset_index(drop=True)
