"""Opponents' answers computed ahead of time: one SQLite file per map, read without torch.

`python -m train publish` writes, for each published bundle, its guess (and, for classifier
heads, its top cells with probabilities) for every place of a map's held-out test split into
`<models dir>/predictions/<map>.sqlite`. The game answers standard rounds from that file, so
serving a round needs neither torch nor a model in memory.

Nothing stale is ever served:
- each bundle's rows carry its weights digest (geoai.bundle_files.weights_digest); a bundle
  retrained or replaced since has another digest, and its rows are ignored as a whole;
- each place's row carries a digest of the place as the game sees it (its key, position,
  and the name and byte size of each view), so a place that changed, or one that is new, is
  simply not in the file; the split's fingerprint (a digest of all place digests) tells in
  one line whether the map changed since the file was written.

Layout (format "geoai-predictions/1"):
    meta(key, value)                      format, map name, data folder
    bundles(bundle, digest, fingerprint, places, head, written)
    predictions(bundle, place, place_digest, lat, lon, cells)  cells: float64 (lat, lon, p)
                                                                triples, most likely first
"""
from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import struct
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from geoai.atomic import atomic_path
from geoai.bundle_files import PREDICTIONS_DIR
from geoai.prediction import PlacePrediction

log = logging.getLogger(__name__)

FORMAT = "geoai-predictions/1"
SUFFIX = ".sqlite"
CONNECT_TIMEOUT_S = 5.0
_CELL = struct.Struct("<ddd")


class PredictionsError(RuntimeError):
    """A predictions file cannot be used (missing, unreadable, another format); the message says why."""


class PlaceLike(Protocol):
    """What a place needs for its digest: app.game.Place fits."""
    location_id: str
    lat: float
    lon: float
    image_paths: tuple[str, ...]


@dataclass(frozen=True)
class BundleEntry:
    """One bundle's rows in a predictions file, as recorded when they were written."""
    bundle: str  # the bundle's folder name in the models folder
    digest: str  # its weights digest then
    fingerprint: str  # the test split's fingerprint then
    places: int
    head: str
    written: str


def predictions_path(models_dir: str | Path, map_name: str) -> Path:
    """<models_dir>/predictions/<map>.sqlite; PredictionsError for a name that is not a plain folder name."""
    name = str(map_name)
    if not name or name != Path(name).name or name.startswith(".") or "\x00" in name:
        raise PredictionsError(f"{map_name!r} is not a map name (a dataset folder's name)")
    return Path(models_dir) / PREDICTIONS_DIR / f"{name}{SUFFIX}"


@lru_cache(maxsize=65536)
def place_digest(place: PlaceLike) -> str:
    """Digest of a place as the game shows it: key, position, and each view's file name and size.

    Sizes, not contents: one stat per view (memoised per place for the process), and a
    re-encoded or replaced photo practically always changes its size. Names without folders,
    so the data folder may move. A view that cannot be read gives a digest no file holds.
    """
    parts = [str(place.location_id), f"{float(place.lat):.7f}", f"{float(place.lon):.7f}"]
    for path in place.image_paths:
        try:
            size = os.stat(path).st_size
        except OSError:
            size = -1
        parts.append(f"{os.path.basename(str(path).replace(os.sep, '/'))}:{size}")
    return hashlib.sha256("\t".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def split_fingerprint(places: Iterable[PlaceLike]) -> str:
    """Fingerprint of a map's test split: a digest of its sorted place digests."""
    digests = sorted(place_digest(p) for p in places)
    return hashlib.sha256("\n".join(digests).encode("ascii")).hexdigest()[:32]


def _pack_cells(cells: Sequence[tuple[float, float, float]] | None) -> bytes | None:
    if cells is None:
        return None
    return b"".join(_CELL.pack(float(a), float(b), float(c)) for a, b, c in cells)


def _unpack_cells(blob: bytes | None) -> tuple[tuple[float, float, float], ...] | None:
    if blob is None:
        return None
    if len(blob) % _CELL.size:
        raise PredictionsError("a row's cells are damaged")
    return tuple(_CELL.iter_unpack(blob))


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bundles (
    bundle TEXT PRIMARY KEY, digest TEXT NOT NULL, fingerprint TEXT NOT NULL,
    places INTEGER NOT NULL, head TEXT NOT NULL, written TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS predictions (
    bundle TEXT NOT NULL, place TEXT NOT NULL, place_digest TEXT NOT NULL,
    lat REAL NOT NULL, lon REAL NOT NULL, cells BLOB,
    PRIMARY KEY (bundle, place));
"""


def write_predictions(path: str | Path, map_name: str, bundle: str, digest: str, fingerprint: str,
                      answers: Iterable[tuple[PlaceLike, PlacePrediction]], head: str = "",
                      data_dir: str | Path | None = None) -> int:
    """Put one bundle's answers into a map's file, replacing that bundle's older rows.

    Other bundles' rows are kept. The file is rebuilt beside and swapped in (geoai.atomic), so
    a game reading it meanwhile sees the old file or the new one, never half of one.
    Returns the number of places written.
    """
    path = Path(path)
    try:
        with atomic_path(path) as staging:
            if path.exists():
                PredictionFile(path).close()  # refuses (PredictionsError) a file that is not ours
                source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=CONNECT_TIMEOUT_S)
                target = sqlite3.connect(staging)
                try:
                    source.backup(target)
                finally:
                    source.close()
                    target.close()
            conn = sqlite3.connect(staging)
            try:
                with conn:
                    conn.executescript(_SCHEMA)
                    conn.execute("INSERT OR REPLACE INTO meta VALUES ('format', ?)", (FORMAT,))
                    conn.execute("INSERT OR REPLACE INTO meta VALUES ('map', ?)", (str(map_name),))
                    if data_dir is not None:  # where the map was read: lets publishing refresh it later
                        conn.execute("INSERT OR REPLACE INTO meta VALUES ('data_dir', ?)", (str(data_dir),))
                    conn.execute("DELETE FROM predictions WHERE bundle = ?", (bundle,))
                    count = 0
                    for place, answer in answers:
                        conn.execute("INSERT OR REPLACE INTO predictions VALUES (?, ?, ?, ?, ?, ?)",
                                     (bundle, str(place.location_id), place_digest(place), float(answer.lat),
                                      float(answer.lon), _pack_cells(answer.top_cells)))
                        count += 1
                    conn.execute("INSERT OR REPLACE INTO bundles VALUES (?, ?, ?, ?, ?, ?)",
                                 (bundle, digest, fingerprint, count, head,
                                  datetime.now(timezone.utc).isoformat(timespec="seconds")))
            finally:
                conn.close()
    except sqlite3.Error as exc:
        raise PredictionsError(f"{path} cannot be written: {exc}") from exc
    return count


class PredictionFile:
    """A map's predictions file, opened read-only; thread-safe (one connection behind a lock).

    Publishing swaps in a new file (os.replace); lookups notice (one stat each) and read the
    new one, so a running game serves the answers of the bundles now on disk.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn, self._identity = self._open()

    def _open(self) -> tuple[sqlite3.Connection, tuple]:
        try:
            stat = self.path.stat()
        except OSError as exc:
            raise PredictionsError(f"{self.path} does not exist") from exc
        if not self.path.is_file():
            raise PredictionsError(f"{self.path} is not a file")
        try:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=CONNECT_TIMEOUT_S,
                                   check_same_thread=False)
        except sqlite3.Error as exc:
            raise PredictionsError(f"{self.path} cannot be opened: {exc}") from exc
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            rows = conn.execute("SELECT bundle, digest, fingerprint, places, head, written FROM bundles").fetchall()
        except sqlite3.Error as exc:
            conn.close()
            raise PredictionsError(f"{self.path} is not a predictions file ({exc})") from exc
        if meta.get("format") != FORMAT:
            conn.close()
            raise PredictionsError(f"{self.path} has format {meta.get('format')!r}; this geoai reads {FORMAT!r} "
                                   "(run `python -m train publish` again)")
        self.map_name = str(meta.get("map", ""))
        self.data_dir = str(meta.get("data_dir", ""))
        self.bundles = {r[0]: BundleEntry(*r) for r in rows}
        return conn, (stat.st_ino, stat.st_size, stat.st_mtime_ns)

    def _follow_replacement(self) -> None:
        """Reopen when the file on disk was replaced since it was opened."""
        try:
            stat = self.path.stat()
        except OSError as exc:
            raise PredictionsError(f"{self.path} is gone") from exc
        if (stat.st_ino, stat.st_size, stat.st_mtime_ns) == self._identity:
            return
        conn, identity = self._open()
        old, self._conn, self._identity = self._conn, conn, identity
        old.close()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _query(self, sql: str, args: tuple) -> list[tuple]:
        try:
            with self._lock:
                self._follow_replacement()
                return self._conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise PredictionsError(f"{self.path} cannot be read: {exc}") from exc

    def digests(self, bundle: str) -> dict[str, str]:
        """{place key: place digest} of a bundle's rows."""
        return dict(self._query("SELECT place, place_digest FROM predictions WHERE bundle = ?", (bundle,)))

    def lookup(self, bundle: str, digest: str, place: PlaceLike) -> PlacePrediction | None:
        """The bundle's stored answer for the place, or None when the file has no valid one.

        Valid means written by weights with this digest, for this very place (same digest).
        """
        rows = self._query("SELECT place_digest, lat, lon, cells FROM predictions WHERE bundle = ? AND place = ?",
                           (bundle, str(place.location_id)))  # first: it follows a replaced file
        entry = self.bundles.get(bundle)
        if entry is None or entry.digest != digest:
            return None
        if not rows or rows[0][0] != place_digest(place):
            return None
        _, lat, lon, cells = rows[0]
        return PlacePrediction(float(lat), float(lon), _unpack_cells(cells))
