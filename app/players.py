"""The model opponents: trained bundles (geoai.models.bundle) that guess each round.

For a map the game picks at most one bundle per backbone family (a transformer such as
BEiT and a CNN such as ResNet-50), preferring bundles trained on that map's dataset and,
among those, the best test score. Predictions are cached per (bundle, place), and the
current round is predicted in the background while the person is still looking, so the
Guess button answers at once.
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.game import Place
from geoai.labels import model_label
from geoai.prediction import PlacePrediction

log = logging.getLogger(__name__)

FAMILY_ORDER = ("transformer", "cnn")
FAMILY_LABELS = {"transformer": "Transformer", "cnn": "CNN"}
MAX_CACHED_PREDICTIONS = 50_000


class OpponentError(RuntimeError):
    """A model opponent cannot play (unreadable bundle, missing backbone weights...)."""


@dataclass(frozen=True)
class OpponentInfo:
    """What the game needs to know about a bundle before loading any weights."""
    name: str
    path: Path
    backbone: str
    family: str
    head: str
    fusion: str
    dataset: str
    metrics: dict = field(compare=False, hash=False, repr=False)

    @property
    def label(self) -> str:
        """What players read: the backbone's display name and family, e.g. "MobileNetV2 · CNN"."""
        return model_label(self.backbone, self.family)

    def test_score(self) -> float:
        """Test mean distance in km (lower is better); infinity when unknown."""
        value = (self.metrics.get("test") or {}).get("mean_km")
        return float(value) if isinstance(value, (int, float)) else float("inf")


def read_opponent(path: Path) -> OpponentInfo:
    """Read a bundle's config.json (no weights); OpponentError when it is unusable."""
    config_path = Path(path) / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        backbone = config["backbone"]
        return OpponentInfo(
            name=str(config.get("name") or Path(path).name), path=Path(path),
            backbone=str(backbone.get("name", "?")), family=str(backbone.get("family") or _guess_family(backbone)),
            head=str(config["head"].get("type", "?")), fusion=str(config.get("fusion", "?")),
            dataset=str((config.get("dataset") or {}).get("name", "")),
            metrics=config.get("metrics") or {})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise OpponentError(f"{path} is not a readable model bundle: {exc}") from exc


def _guess_family(backbone: dict[str, Any]) -> str:
    text = f"{backbone.get('name', '')} {backbone.get('source', '')}".lower()
    return "cnn" if any(k in text for k in ("resnet", "mobilenet", "convnext", "efficientnet")) else "transformer"


def read_opponents(paths: Sequence[Path]) -> tuple[list[OpponentInfo], list[str]]:
    """Every readable bundle, and one message per unreadable one (shown, never hidden)."""
    infos, problems = [], []
    for path in paths:
        try:
            infos.append(read_opponent(path))
        except OpponentError as exc:
            problems.append(str(exc))
    return infos, problems


def choose_opponents(infos: Sequence[OpponentInfo], map_name: str) -> list[OpponentInfo]:
    """At most one opponent per backbone family: trained on this map first, then best test km."""
    chosen = []
    families = sorted({i.family for i in infos}, key=lambda f: (FAMILY_ORDER + (f,)).index(f))
    for family in families:
        candidates = [i for i in infos if i.family == family]
        best = min(candidates, key=lambda i: (i.dataset != map_name, i.test_score(), i.name))
        chosen.append(best)
    return chosen


class ModelPlayers:
    """Loads bundles on demand (sharing backbones) and predicts places, cached and in the background.

    One instance per process (st.cache_resource): thread-safe for parallel sessions.
    """

    def __init__(self, device: str | None = None) -> None:
        self.device = device
        self._bundles: dict[Path, Any] = {}
        self._backbones: dict[tuple[str, str], Any] = {}
        self._predictions: dict[tuple[Path, tuple[str, ...]], PlacePrediction] = {}
        self._pending: dict[tuple[Path, tuple[str, ...]], Future] = {}
        self._lock = threading.RLock()
        self._model_lock = threading.Lock()  # one forward pass at a time: CPU threads are shared anyway
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="geoai-predict")

    def bundle(self, info: OpponentInfo):
        """The loaded bundle (head now, backbone now too, shared with bundles that use the same one)."""
        from geoai.models import Bundle, BundleError  # heavy import (torch): only when a model plays

        with self._lock:
            if info.path in self._bundles:
                return self._bundles[info.path]
            try:
                config = json.loads((info.path / "config.json").read_text(encoding="utf-8"))
                key = (config["backbone"].get("name", ""), config["backbone"].get("cache_key") or "")
                shared = self._backbones.get(key) if not config["backbone"].get("bundled") else None
                bundle = Bundle.load(info.path, device=self.device, backbone=shared)
                backbone = bundle.backbone  # load now: the first guess should not pay for it
            except Exception as exc:  # any broken bundle (bad config, pickled weights, huge sizes) skips this opponent
                reason = str(exc) if isinstance(exc, (BundleError, OSError, ValueError, KeyError)) else f"{type(exc).__name__}: {exc}"
                raise OpponentError(f"model {info.name} cannot play: {(reason.splitlines() or [''])[0]}") from exc
            if key not in self._backbones:
                backbone.speed_up("latency")  # the game's case: one place at a time
                self._backbones[key] = backbone
            self._bundles[info.path] = bundle
            return bundle

    def prefetch(self, infos: Sequence[OpponentInfo], place: Place) -> None:
        """Start predicting `place` for every opponent in the background (no-op when cached)."""
        for info in infos:
            key = (info.path, place.image_paths)
            with self._lock:
                if key in self._predictions or key in self._pending:
                    continue
                self._pending[key] = self._executor.submit(self._predict_now, info, place)

    def predict(self, infos: Sequence[OpponentInfo], place: Place) -> dict[str, tuple[float, float]]:
        """Each opponent's (lat, lon) guess for the place, from cache, a prefetch or computed now."""
        self.prefetch(infos, place)
        guesses = {}
        for info in infos:
            key = (info.path, place.image_paths)
            with self._lock:
                cached = self._predictions.get(key)
                future = self._pending.get(key)
            if cached is None:
                try:
                    cached = future.result()
                finally:
                    with self._lock:
                        self._pending.pop(key, None)
            guesses[info.name] = cached.latlon
        return guesses

    def prediction(self, info: OpponentInfo, place: Place) -> PlacePrediction | None:
        """The opponent's full answer for a place it already guessed (with its belief), else None."""
        with self._lock:
            return self._predictions.get((info.path, place.image_paths))

    def predict_photos(self, info: OpponentInfo, images: Sequence[Any]) -> PlacePrediction:
        """The opponent's answer for one place given as decoded views (e.g. a person's own photo)."""
        bundle = self.bundle(info)
        with self._model_lock:
            try:
                return bundle.predict_place_embeddings(bundle.backbone.embed(list(images)))
            except Exception as exc:  # a model that fails here must not end the game
                raise OpponentError(f"model {info.label} cannot guess this place: {type(exc).__name__}: {exc}") from exc

    def _predict_now(self, info: OpponentInfo, place: Place) -> PlacePrediction:
        from geoai.data import ImageError, open_image

        try:
            images = [open_image(p) for p in place.image_paths]
        except ImageError as exc:
            log.warning("round photo unreadable: %s", exc)
            raise OpponentError("the photo of this round cannot be read") from exc
        answer = self.predict_photos(info, images)
        with self._lock:
            if len(self._predictions) >= MAX_CACHED_PREDICTIONS:
                self._predictions.clear()
            self._predictions[(info.path, place.image_paths)] = answer
        return answer

    def warm_up(self, infos: Sequence[OpponentInfo]) -> dict[str, str]:
        """Load every opponent's weights now; {name: why} for those that cannot play."""
        problems = {}
        for info in infos:
            try:
                self.bundle(info)
            except OpponentError as exc:
                log.warning("skipping opponent: %s", exc)
                problems[info.name] = str(exc)
        return problems
