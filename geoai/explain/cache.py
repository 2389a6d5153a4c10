"""Cache keys and a bounded cache for explanations.

A key is the photo's bytes digest plus the bundle's weights digest (backbone weights
hash + head weights), so a retrained model or another photo never reuses a drawing.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

MAX_ENTRIES = 512
MAX_BYTES = 128 * 1024 * 1024


def photo_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bundle_digest(bundle: Any) -> str:
    """Digest of what decides a bundle's answers: its backbone weights and its head weights."""
    digest = hashlib.sha256()
    backbone_key = bundle.config.backbone.cache_key or bundle.backbone.cache_key
    digest.update(str(backbone_key).encode())
    head_file = Path(bundle.path) / "head.safetensors"
    if head_file.is_file():
        with head_file.open("rb") as fh:
            digest.update(hashlib.file_digest(fh, "sha256").digest())
    else:  # a bundle built in memory: hash the head's tensors
        for name, tensor in sorted(bundle.head.state_dict().items()):
            digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


class ExplanationCache:
    """Thread-safe least-recently-used cache of encoded drawings, bounded in entries and bytes."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._items: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: tuple[str, str]) -> Any | None:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: tuple[str, str], value: Any) -> None:
        size = _size(value)
        with self._lock:
            if key in self._items:
                self._bytes -= _size(self._items.pop(key))
            self._items[key] = value
            self._bytes += size
            while self._items and (len(self._items) > self.max_entries or self._bytes > self.max_bytes):
                _, dropped = self._items.popitem(last=False)
                self._bytes -= _size(dropped)

    def get_or_compute(self, key: tuple[str, str], compute: Callable[[], Any]) -> Any:
        found = self.get(key)
        if found is None:
            found = compute()
            self.put(key, found)
        return found


def _size(value: Any) -> int:
    data = getattr(value, "jpeg", value)
    return len(data) if isinstance(data, (bytes, bytearray)) else 0
