"""Several datasets trained as one: the union of their rows, each place keeping its own split.

Every dataset is loaded (and split) on its own, exactly as the game and `train evaluate`
read it, so a place's split in the union is its split in its dataset and no dataset's test
place can enter training. Place ids and file names are prefixed with the dataset's name, so
two datasets that reuse an id ("0", "Paris") never merge their places.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from geoai.data.dataset import GeoDataset


class DatasetsError(ValueError):
    """The datasets to join cannot be found or told apart; the message says why."""


DATASET_COLUMN = "member_dataset"  # the member dataset's name, on every row of a union
METADATA = "metadata.csv"


def dataset_folders(paths: Sequence[str | Path]) -> list[Path]:
    """The dataset folders named by `paths`: a folder with metadata.csv is one dataset; a folder
    without one stands for every subfolder that has one (a folder of datasets).

    DatasetsError when a path is missing, holds no dataset, or a dataset appears twice.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.is_dir():
            raise DatasetsError(f"dataset folder {path} does not exist (pass --data DIR, a folder with metadata.csv "
                               "or a folder of such folders)")
        if (path / METADATA).is_file():
            found.append(path)
            continue
        members = sorted(p for p in path.iterdir() if p.is_dir() and (p / METADATA).is_file())
        if not members:
            raise DatasetsError(f"{path} has no {METADATA} and no subfolder with one: it is neither a dataset "
                               "nor a folder of datasets")
        found.extend(members)
    names = [p.name for p in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DatasetsError(f"dataset(s) {', '.join(twice)} given twice; each dataset may appear once "
                           "(datasets are told apart by their folder name)")
    return found


def union_datasets(datasets: Sequence[GeoDataset], name: str | None = None) -> GeoDataset:
    """One GeoDataset of all rows; `member_dataset` column = member name; splits kept from each member.

    A single dataset is returned unchanged. name: the union's name (default: the members'
    names joined with "+").
    """
    if not datasets:
        raise DatasetsError("no dataset to train on")
    if len(datasets) == 1:
        return datasets[0]
    names = [d.name for d in datasets]
    if len(set(names)) != len(names):
        raise DatasetsError(f"datasets with the same name cannot be joined: {names}")
    frames, hashes, problems = [], {}, []
    for dataset in datasets:
        frame = dataset.frame.copy()
        frame[DATASET_COLUMN] = dataset.name
        frame["location_id"] = dataset.name + "/" + frame["location_id"].astype(str)
        frame["file_name"] = dataset.name + "/" + frame["file_name"].astype(str)
        frames.append(frame)
        hashes.update(dataset._hash_cache)
        problems.extend(dataset.problems)
    # Extra CSV columns missing from some members read as empty text, like absent values do.
    frame = pd.concat(frames, ignore_index=True).fillna("")
    root = Path(os.path.commonpath([str(d.root.resolve()) for d in datasets]))
    return GeoDataset(root=root, frame=frame, problems=problems, name=name or "+".join(names),
                      _hash_cache=hashes)


def member_names(dataset: GeoDataset) -> list[str]:
    """The datasets a (possibly joined) dataset is made of, in order."""
    if DATASET_COLUMN in dataset.frame.columns and dataset.frame[DATASET_COLUMN].astype(str).ne("").all():
        return list(dict.fromkeys(dataset.frame[DATASET_COLUMN].astype(str)))
    return [dataset.name]


def member_mask(dataset: GeoDataset, name: str):
    """Boolean row mask of one member (every row for a single dataset)."""
    if DATASET_COLUMN in dataset.frame.columns and len(member_names(dataset)) > 1:
        return (dataset.frame[DATASET_COLUMN].astype(str) == name).to_numpy()
    return pd.Series(True, index=dataset.frame.index).to_numpy()
