"""Reading and validating an image folder: `DIR/metadata.csv` beside the images.

This is the Hugging Face `imagefolder` layout. Required columns: file_name, lat, lon;
optional: location_id (group key, default the file itself), heading, country; any other
column is kept. Every problem is collected (never silently dropped), then either raised
together or, with on_error="skip", reported in `GeoDataset.problems` with the row dropped.
"""
from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Literal

import pandas as pd
from tqdm import tqdm

from geoai.data.dataset import CORE_COLUMNS, GeoDataset
from geoai.data.errors import DatasetError, ImageError, Problem
from geoai.data.images import DEFAULT_MAX_PIXELS, CheckLevel, check_image
from geoai.data.splits import DEFAULT_FRACTIONS, DEFAULT_SALT, assign_splits, validate_fractions

METADATA_FILE = "metadata.csv"
REQUIRED_COLUMNS = ("file_name", "lat", "lon")
OPTIONAL_COLUMNS = ("location_id", "heading", "country")
STUDY_COLUMNS = ("path", "square_id", "lat", "lon")
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

    Raises DatasetError on an unreadable/empty file, missing required columns or no rows.
    """
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise DatasetError([Problem("empty_metadata", "the file is empty: it has no header "
                                    "and no rows")], source=csv_path) from None
    except (pd.errors.ParserError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError([Problem("bad_csv", f"cannot be parsed as CSV ({exc}); check for "
                                    "unquoted commas and the UTF-8 encoding")],
                           source=csv_path) from None
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise DatasetError([Problem(
            "missing_column",
            f"required column(s) {', '.join(missing)} missing; found columns: "
            f"{', '.join(table.columns) or '(none)'}; expected at least "
            f"{', '.join(REQUIRED_COLUMNS)}")], source=csv_path)
    if table.empty:
        raise DatasetError([Problem("empty_metadata", "has a header but no data rows")],
                           source=csv_path)
    return table.reset_index(drop=True)


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


def parse_coordinate(raw: str, name: str, limit: float) -> tuple[float | None, str | None]:
    """(value, None) for a valid coordinate, else (None, reason). `name` is "latitude"/"longitude"."""
    text = raw.strip()
    if text == "":
        return None, f"{name} is empty"
    try:
        value = float(text)
    except ValueError:
        return None, f"{name} {raw!r} is not a number"
    if math.isnan(value):
        return None, f"{name} is NaN"
    if not -limit <= value <= limit:
        return None, f"{name} {raw} is outside [-{limit:g}, {limit:g}]"
    return value, None


def safe_relative_path(file_name: str) -> PurePosixPath | None:
    """The normalised relative path, or None if it is absolute or climbs out with '..'."""
    if PureWindowsPath(file_name).drive or file_name.startswith(("/", "\\")):
        return None
    parts = [p for p in file_name.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return PurePosixPath(*parts)


def _validate_rows(table: pd.DataFrame, root: Path) -> dict[int, list[Problem]]:
    """Per-row problems (keyed by table index) except image content, which is checked later."""
    problems: dict[int, list[Problem]] = {}
    first_row_of: dict[PurePosixPath, int] = {}
    has_group = "location_id" in table.columns

    def add(index: int, kind: str, message: str, file_name: str | None) -> None:
        problems.setdefault(index, []).append(Problem(kind, message, row=index + 1,
                                                      file_name=file_name))

    for index in table.index:
        file_name = table.at[index, "file_name"]
        shown = file_name or None
        for column, name, limit in (("lat", "latitude", 90.0), ("lon", "longitude", 180.0)):
            _, reason = parse_coordinate(table.at[index, column], name, limit)
            if reason:
                add(index, "bad_coordinate", reason, shown)
        if has_group and table.at[index, "location_id"].strip() == "":
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
        if relative in first_row_of:
            add(index, "duplicate_path", f"same file as row {first_row_of[relative] + 1}; "
                "each image must appear once", shown)
            continue
        first_row_of[relative] = index
        full = root / relative
        if not full.exists():
            add(index, "missing_file", f"file not found at {full}", shown)
        elif not full.resolve().is_relative_to(root):
            add(index, "unsafe_path", "links to a file outside the dataset folder", shown)
        elif not full.is_file():
            add(index, "missing_file", f"{full} is not a file", shown)
    return problems


def _check_image_files(table: pd.DataFrame, root: Path, problems: dict[int, list[Problem]],
                       level: CheckLevel, max_pixels: int, progress: bool) -> None:
    # Only rows whose file was found and is safe; coordinate problems don't stop the check.
    file_kinds = {"missing_file", "unsafe_path", "duplicate_path"}
    todo = [i for i in table.index
            if not any(p.kind in file_kinds for p in problems.get(i, []))]
    for index in tqdm(todo, desc=f"checking images ({level})", unit="img",
                      disable=not progress, leave=False):
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
    out["lat"] = table["lat"].str.strip().astype("float64")
    out["lon"] = table["lon"].str.strip().astype("float64")
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
