"""Each published bundle's answers for every place of a map, written ahead for the game.

The places are exactly the game's (app.maps.load_map: the held-out test split, views in the
game's order), and each place is predicted the way the game predicts it live (all its views
through Bundle.predict_place_embeddings, on CPU through the same graph runtime as the game's
live answers when one is installed), so a stored answer equals the live one.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from geoai import settings
from geoai.bundle_files import discover_bundles, weights_digest
from geoai.precomputed import predictions_path, split_fingerprint, write_predictions
from train.errors import TrainError

PLACES_PER_BATCH = 16  # places embedded together (their views in one call)
PROGRESS_EVERY_S = 2.0


@dataclass(frozen=True)
class Precomputed:
    """One bundle's answers written into a map's predictions file."""
    bundle: Path
    path: Path
    places: int
    seconds: float


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def precompute_map(bundle_dirs: Sequence[Path], data_dir: str | Path, models_dir: str | Path | None = None,
                   progress: Callable[[str], None] = _stderr, device: str | None = None) -> list[Precomputed]:
    """Write every bundle's answers for the map in data_dir into <models_dir>/predictions/<map>.sqlite."""
    from app.maps import MapError, load_map
    from geoai.data import ImageError, open_image
    from geoai.models import Bundle

    try:
        game_map = load_map(Path(data_dir))
    except MapError as exc:
        raise TrainError(str(exc)) from None
    places = list(game_map.places)
    target = predictions_path(Path(models_dir) if models_dir is not None else settings.models_dir(), game_map.name)
    fingerprint = split_fingerprint(places)
    done = []
    for bundle_dir in bundle_dirs:
        bundle_dir = Path(bundle_dir)
        started = time.monotonic()
        bundle = Bundle.load(bundle_dir, device=device)
        bundle.backbone.use_runtime("throughput")  # the graph runtime the game's live answers use
        label = f"{game_map.name}: {bundle_dir.name}"
        answers, last = [], 0.0
        for start in range(0, len(places), PLACES_PER_BATCH):
            batch = places[start:start + PLACES_PER_BATCH]
            try:
                images = [open_image(p) for place in batch for p in place.image_paths]
            except ImageError as exc:
                raise TrainError(f"a photo of map {game_map.name} cannot be read: {exc}") from None
            embeddings = bundle.backbone.embed(images)
            offset = 0
            for place in batch:
                views = len(place.image_paths)
                answers.append((place, bundle.predict_place_embeddings(embeddings[offset:offset + views])))
                offset += views
            now = time.monotonic()
            if now - last >= PROGRESS_EVERY_S or len(answers) == len(places):
                progress(f"predicting {label}: {len(answers)}/{len(places)} places")
                last = now
        count = write_predictions(target, game_map.name, bundle_dir.name, weights_digest(bundle_dir), fingerprint,
                                  answers, head=bundle.head_type,
                                  data_dir=Path(data_dir).absolute())
        done.append(Precomputed(bundle_dir, target, count, time.monotonic() - started))
    return done


def bundles_for_map(map_name: str, models_dir: str | Path | None = None, places=None) -> list[Path]:
    """The bundles the game plays on a map: one per backbone family (app.players.choose_opponents),
    among those whose training coverage takes in the map's places when they are given."""
    from app.players import choose_opponents, read_opponents

    infos, _ = read_opponents(discover_bundles(models_dir))
    return [info.path for info in choose_opponents(infos, map_name, places)]


def precompute_maps(map_dirs: Sequence[str | Path], models_dir: str | Path | None = None, every_bundle: bool = False,
                    progress: Callable[[str], None] = _stderr) -> list[Precomputed]:
    """Write the answers for maps whose models were trained elsewhere (or any map, again).

    For each map folder: the bundles the game would play there (every bundle with
    every_bundle), into <models_dir>/predictions/<map>.sqlite.
    """
    models = Path(models_dir) if models_dir is not None else settings.models_dir()
    done = []
    for map_dir in map_dirs:
        map_dir = Path(map_dir)
        if every_bundle:
            bundles = discover_bundles(models)
        else:
            from app.maps import MapError, load_map

            try:
                places = load_map(map_dir).places
            except MapError as exc:
                raise TrainError(str(exc)) from None
            bundles = bundles_for_map(map_dir.name, models, places)
        if not bundles and not every_bundle and discover_bundles(models):
            raise TrainError(f"no model in {models} covers map {map_dir.name}: its places lie outside every model's "
                             "training places (train one on it, or pass --all)")
        if not bundles:
            raise TrainError(f"no model bundles in {models}: publish a run first (python -m train publish RUN)")
        done += precompute_map(bundles, map_dir, models, progress)
    return done


def refresh_other_maps(bundle_dirs: Sequence[Path], done_map: str, models_dir: str | Path | None = None,
                       progress: Callable[[str], None] = _stderr) -> list[Precomputed]:
    """After publishing: maps whose files hold answers of these bundles by older weights get new ones.

    Without the map's data folder (moved or deleted), says how to refresh it instead; until
    then the game predicts those bundles live on that map (the stale answers are never used).
    """
    from geoai.precomputed import PredictionFile, PredictionsError

    models = Path(models_dir) if models_dir is not None else settings.models_dir()
    folder = predictions_path(models, done_map).parent
    done = []
    for path in sorted(folder.glob("*.sqlite")) if folder.is_dir() else []:
        try:
            file = PredictionFile(path)
            file.close()
        except PredictionsError as exc:
            progress(f"warning: {exc}")
            continue
        if file.map_name == done_map:
            continue
        stale = [b for b in bundle_dirs if b.name in file.bundles and file.bundles[b.name].digest != weights_digest(b)]
        if not stale:
            continue
        if file.data_dir and (Path(file.data_dir) / "metadata.csv").is_file():
            done += precompute_map(stale, file.data_dir, models, progress)
        else:
            progress(f"warning: {path} holds answers of {', '.join(b.name for b in stale)} by their former weights; "
                     f"they are not used: run `python -m train predictions DIR/{file.map_name}`")
    return done
