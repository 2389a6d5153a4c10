"""The model opponents: trained bundles (geoai.models.bundle) that guess each round.

For a map the game picks at most one bundle per backbone family (a transformer such as
BEiT and a CNN such as ResNet-50) among the bundles whose training places cover the map's
places (geoai.coverage), preferring bundles trained on that map's dataset and, among those,
the best test score on it. Their answers for the map's places come from the
predictions file `python -m train publish` writes (geoai.precomputed; no torch needed);
anything it cannot answer is predicted by the model itself, cached per (bundle, place) and
in the background while the person is still looking, so the Guess button answers at once.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.game import Place
from geoai import settings
from geoai.bundle_files import DigestError, weights_digest
from geoai.bundle_config import BundleConfig
from geoai.coverage import Verdict, verdict
from geoai.labels import model_label
from geoai.precomputed import (
    PredictionFile,
    PredictionsError,
    place_digest,
    predictions_path,
    split_fingerprint,
)
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
    datasets: tuple[str, ...] = ()  # every dataset it trained on (several for a joined run)
    coverage: tuple = field(default=(), compare=False, hash=False, repr=False)  # training [lat, lon]s

    @property
    def trained_on(self) -> tuple[str, ...]:
        return self.datasets or (self.dataset,)

    def score_on(self, map_name: str) -> float:
        """Test mean km on this map's own test split when recorded, else test_score()."""
        own = (((self.metrics.get("datasets") or {}).get(map_name) or {}).get("test") or {}).get("mean_km")
        return float(own) if isinstance(own, (int, float)) else self.test_score()

    @property
    def label(self) -> str:
        """What players read: the backbone's display name and family, e.g. "MobileNetV2 · CNN"."""
        return model_label(self.backbone, self.family)

    def test_score(self) -> float:
        """Test mean distance in km (lower is better); infinity when unknown."""
        value = (self.metrics.get("test") or {}).get("mean_km")
        return float(value) if isinstance(value, (int, float)) else float("inf")


def read_opponent(path: Path) -> OpponentInfo:
    """Read a bundle's config (no weights); OpponentError when it is unusable."""
    try:
        config = BundleConfig.read(path)
        return OpponentInfo(
            name=config.name, path=Path(path), backbone=config.backbone.name, family=config.family,
            head=config.head_type, fusion=config.fusion, dataset=config.dataset_name, metrics=config.metrics,
            datasets=config.member_names, coverage=tuple(tuple(p) for p in config.coverage))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise OpponentError(f"{path} is not a readable model bundle: {exc}") from exc


def read_opponents(paths: Sequence[Path]) -> tuple[list[OpponentInfo], list[str]]:
    """Every readable bundle, and one message per unreadable one (shown, never hidden)."""
    infos, problems = [], []
    for path in paths:
        try:
            infos.append(read_opponent(path))
        except OpponentError as exc:
            problems.append(str(exc))
    return infos, problems


def opponent_verdict(info: OpponentInfo, map_name: str, places: Sequence[Any]) -> Verdict:
    """Whether the bundle's training coverage takes in the map's places (geoai.coverage), and why."""
    return verdict(info.coverage, info.trained_on, map_name, places)


def choose_opponents(infos: Sequence[OpponentInfo], map_name: str,
                     places: Sequence[Any] | None = None) -> list[OpponentInfo]:
    """At most one opponent per backbone family: trained on this map first, then best test km on it.

    With the map's places, only bundles whose training coverage takes them in may play.
    """
    if places is not None:
        infos = [i for i in infos if opponent_verdict(i, map_name, places).plays]
    chosen = []
    families = sorted({i.family for i in infos}, key=lambda f: (FAMILY_ORDER + (f,)).index(f))
    for family in families:
        candidates = [i for i in infos if i.family == family]
        best = min(candidates, key=lambda i: (map_name not in i.trained_on, i.score_on(map_name), i.name))
        chosen.append(best)
    return chosen


class ModelPlayers:
    """The opponents' answers: from the map's predictions file when it has them, else from the models.

    Standard rounds are answered from <models>/predictions/<map>.sqlite (geoai.precomputed),
    which needs no torch. A model is loaded (sharing backbones) only for places the file
    lacks, for bundles whose weights changed since it was written, or for callers that never
    attach a map. Live predictions are cached per (bundle, place) and run in the background,
    so the Guess button answers at once.

    One instance per process (st.cache_resource): thread-safe for parallel sessions.
    """

    def __init__(self, device: str | None = None, models_dir: Path | None = None) -> None:
        self.device = device
        self._models_dir = Path(models_dir) if models_dir is not None else None  # None: GEOAI_MODELS_DIR
        self._bundles: dict[Path, Any] = {}
        self._backbones: dict[tuple[str, str], Any] = {}
        self._predictions: dict[tuple[Path, tuple[str, ...]], PlacePrediction] = {}
        self._pending: dict[tuple[Path, tuple[str, ...]], Future] = {}
        self._files: dict[str, PredictionFile | None] = {}  # map name -> its file (None: none usable)
        self._attached: dict[Path, dict[str, PredictionFile]] = {}  # bundle -> files that answer for it
        self._lock = threading.RLock()
        self._model_lock = threading.Lock()  # one forward pass at a time: CPU threads are shared anyway
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="geoai-predict")

    # -- answers computed ahead ----------------------------------------------------------
    def _file(self, map_name: str) -> PredictionFile | None:
        """The map's predictions file, opened once; None (logged once) when absent or unusable."""
        with self._lock:
            if map_name in self._files:
                return self._files[map_name]
            try:
                path = predictions_path(self._models_dir or settings.models_dir(), map_name)
                if not path.is_file():
                    log.info("no precomputed predictions for map %s (%s): its models play live; "
                             "`python -m train publish RUN` writes them", map_name, path)
                    found = None
                else:
                    found = PredictionFile(path)
            except PredictionsError as exc:
                log.error("precomputed predictions for map %s are not used: %s", map_name, exc)
                found = None
            self._files[map_name] = found
            return found

    def attach_map(self, info: OpponentInfo, map_name: str, places: Sequence[Place]) -> int:
        """Let the map's predictions file answer for this opponent; how many places it covers.

        A file written by other weights (the bundle was retrained or replaced) is not used
        at all for this opponent, and a place that changed since is not answered from it;
        both are logged with the reason.
        """
        file = self._file(map_name)
        if file is None:
            return 0
        key = info.path.name
        entry = file.bundles.get(key)
        if entry is None:
            log.warning("%s has no answers of model %s (%s): it plays live", file.path, info.name, key)
            return 0
        try:
            digest = weights_digest(info.path)
        except DigestError as exc:
            log.warning("precomputed answers of model %s not used: %s", info.name, exc)
            return 0
        if entry.digest != digest:
            log.error("precomputed answers of model %s in %s were made by other weights (digest %s, the bundle "
                      "now has %s): they are not used and it plays live; run `python -m train publish` again",
                      info.name, file.path, entry.digest[:12], digest[:12])
            return 0
        try:
            stored = file.digests(key)
        except PredictionsError as exc:
            log.error("precomputed answers of model %s not used: %s", info.name, exc)
            return 0
        covered = sum(stored.get(p.location_id) == place_digest(p) for p in places)
        if entry.fingerprint != split_fingerprint(places) or covered < len(places):
            log.warning("%s was written for another version of map %s (split fingerprint %s, the map now has "
                        "%s): model %s answers %d of %d places from it, the others live",
                        file.path, map_name, entry.fingerprint[:12], split_fingerprint(places)[:12],
                        info.name, covered, len(places))
        with self._lock:
            self._attached.setdefault(info.path, {})[map_name] = file
        return covered

    def _precomputed(self, info: OpponentInfo, place: Place) -> PlacePrediction | None:
        with self._lock:
            files = list(self._attached.get(info.path, {}).values())
        if not files:
            return None
        try:
            digest = weights_digest(info.path)  # memoised on the files' stat: notices a republished bundle
        except DigestError:
            return None
        for file in files:
            try:
                answer = file.lookup(info.path.name, digest, place)
            except PredictionsError as exc:
                log.error("precomputed answer of model %s not used: %s", info.name, exc)
                continue
            if answer is not None:
                return answer
        return None

    # -- live models -----------------------------------------------------------------------
    def bundle(self, info: OpponentInfo):
        """The loaded bundle (head now, backbone now too, shared with bundles that use the same one)."""
        from geoai.models import Bundle, BundleError  # heavy import (torch): only when a model plays live

        with self._lock:
            if info.path in self._bundles:
                return self._bundles[info.path]
            try:
                bundle = Bundle.load(info.path, device=self.device)
                key = bundle.backbone_key
                shared = self._backbones.get(key) if key is not None else None
                if shared is not None:
                    bundle.use_backbone(shared)
                backbone = bundle.backbone  # load now: the first guess should not pay for it
            except Exception as exc:  # any broken bundle (bad config, pickled weights, huge sizes) skips this opponent
                reason = str(exc) if isinstance(exc, (BundleError, OSError, ValueError, KeyError)) else f"{type(exc).__name__}: {exc}"
                raise OpponentError(f"model {info.name} cannot play: {(reason.splitlines() or [''])[0]}") from exc
            if shared is None:
                backbone.speed_up("latency")  # the game's case: one place at a time
            if key is not None:
                self._backbones.setdefault(key, backbone)
            self._bundles[info.path] = bundle
            return bundle

    def loaded(self, info: OpponentInfo) -> bool:
        """Whether the opponent's model is in memory (it played live): using it costs nothing more."""
        with self._lock:
            return info.path in self._bundles

    def prefetch(self, infos: Sequence[OpponentInfo], place: Place) -> None:
        """Start predicting `place` in the background for opponents the file cannot answer."""
        for info in infos:
            key = (info.path, place.image_paths)
            with self._lock:
                if key in self._predictions or key in self._pending:
                    continue
            if self._precomputed(info, place) is not None:
                continue
            with self._lock:
                if key not in self._predictions and key not in self._pending:
                    self._pending[key] = self._executor.submit(self._predict_now, info, place)

    def predictions(self, infos: Sequence[OpponentInfo], place: Place) -> dict[str, PlacePrediction]:
        """Each opponent's full answer for the place (guess and, for classifier heads, top cells)."""
        self.prefetch(infos, place)
        answers = {}
        for info in infos:
            key = (info.path, place.image_paths)
            with self._lock:
                cached = self._predictions.get(key)
                future = self._pending.get(key)
            if cached is None and future is None:
                cached = self._precomputed(info, place)
                if cached is None:  # the file stopped answering since prefetch: predict now
                    with self._lock:
                        cached, future = self._predictions.get(key), self._pending.get(key)
                        if cached is None and future is None:
                            future = self._pending[key] = self._executor.submit(self._predict_now, info, place)
            if cached is None:
                try:
                    cached = future.result()
                finally:
                    with self._lock:
                        self._pending.pop(key, None)
            answers[info.name] = cached
        return answers

    def predict(self, infos: Sequence[OpponentInfo], place: Place) -> dict[str, tuple[float, float]]:
        """Each opponent's (lat, lon) guess for the place, from the file, cache, a prefetch or computed now."""
        return {name: answer.latlon for name, answer in self.predictions(infos, place).items()}

    def prediction(self, info: OpponentInfo, place: Place) -> PlacePrediction | None:
        """The opponent's full answer for a place it already guessed (with its belief), else None.

        Never computes: from the predictions file or the cache of live answers.
        """
        with self._lock:
            cached = self._predictions.get((info.path, place.image_paths))
        return cached if cached is not None else self._precomputed(info, place)

    def predict_photos(self, info: OpponentInfo, images: Sequence[Any]) -> PlacePrediction:
        """The opponent's answer for one place given as decoded views (e.g. a person's own photo)."""
        if not images:
            raise OpponentError("there is no photo to guess from")
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

    def warm_up(self, infos: Sequence[OpponentInfo], map_name: str | None = None,
                places: Sequence[Place] | None = None) -> dict[str, str]:
        """Get every opponent ready; {name: why} for those that cannot play.

        With the map (name and test places), an opponent its predictions file answers for
        loads no model: fully covered, none is needed; partly covered, it loads on the first
        place the file lacks. Others load their weights now, so the first guess is quick.
        """
        problems = {}
        for info in infos:
            if map_name is not None and places is not None and self.attach_map(info, map_name, places) > 0:
                continue
            try:
                self.bundle(info)
            except OpponentError as exc:
                log.warning("skipping opponent: %s", exc)
                problems[info.name] = str(exc)
        return problems
