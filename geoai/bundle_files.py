"""Facts about model bundle folders that need no torch: where they live, which exist, and a
digest of what decides their answers.

The game imports this in its request path; geoai.models.bundle (torch) re-exports it.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import warnings
from pathlib import Path

from geoai import settings

CONFIG_FILE, WEIGHTS_FILE = "config.json", "head.safetensors"
PREDICTIONS_DIR = "predictions"  # models/predictions/<map>.sqlite: answers computed ahead (geoai.precomputed)


def discover_bundles(models_dir: str | Path | None = None) -> list[Path]:
    """Bundle folders (with config.json) in models_dir, GEOAI_MODELS_DIR or <repo>/models, sorted.

    Subfolders without config.json are reported with a warning rather than silently skipped
    (except the predictions folder, which belongs there).
    """
    root = Path(models_dir) if models_dir is not None else settings.models_dir()
    if not root.is_dir():
        return []
    found = []
    for child in sorted(root.iterdir()):
        if not child.is_dir() or child.name.startswith((".", "_")) or child.name == PREDICTIONS_DIR:
            continue
        if (child / CONFIG_FILE).is_file():
            found.append(child)
        else:
            warnings.warn(f"{child} has no {CONFIG_FILE}; it is not a model bundle and is ignored", stacklevel=2)
    return found


class DigestError(OSError):
    """A bundle's files cannot be read to compute its digest."""


_digests: dict[tuple, str] = {}
_digests_lock = threading.Lock()


def weights_digest(bundle_dir: str | Path) -> str:
    """SHA-256 (32 hex digits) of what decides a bundle's answers, read from its files.

    Covers the head's weights file byte for byte and, from config.json, the backbone's
    weights key (its cache_key hashes the backbone weights), the head's config and the view
    fusion. Retraining, fine-tuning or swapping the backbone changes it; copying the folder
    does not. Memoised per file size and modification time, so calling it per round is cheap.
    """
    folder = Path(bundle_dir)
    config_path, head_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    try:
        stats = tuple((s.st_ino, s.st_size, s.st_mtime_ns) for s in (config_path.stat(), head_path.stat()))
        key = (os.path.abspath(folder), stats)  # no realpath: it is called per round
        with _digests_lock:
            if key in _digests:
                return _digests[key]
        config = json.loads(config_path.read_text(encoding="utf-8"))
        backbone = config.get("backbone") or {}
        decides = {"backbone": backbone.get("cache_key") or [backbone.get("name"), backbone.get("source")],
                   "head": config.get("head"), "fusion": config.get("fusion")}
        digest = hashlib.sha256(json.dumps(decides, sort_keys=True).encode("utf-8"))
        with head_path.open("rb") as fh:
            digest.update(hashlib.file_digest(fh, "sha256").digest())
    except (OSError, ValueError, AttributeError) as exc:
        raise DigestError(f"{folder} cannot be read as a model bundle: {exc}") from exc
    value = digest.hexdigest()[:32]
    with _digests_lock:
        if len(_digests) > 1024:
            _digests.clear()
        _digests[key] = value
    return value
