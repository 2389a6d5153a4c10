"""`RunResults` and `ResultRow`: a training run's RUN/results.json as typed values.

The grid writes them; the reports, `publish` and the world table read them. The JSON keeps
its layout (format "geoai-results/1"); files written before the format was recorded load too.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from train.errors import TrainError

RESULTS_FORMAT = "geoai-results/1"
RESULTS_FILE = "results.json"


@dataclass
class ResultRow:
    """One configuration of the grid: backbone x head x view mode, its metrics and bundle.

    metrics: {"train"|"val"|"test": geoai.metrics.compute_metrics(...), "datasets": {...}}.
    bundle: the bundle folder relative to the run folder (None when none was written).
    fit: how the head was fitted (epochs_run, best_epoch, best_val_km, fit_seconds, cells,
        refine); stored beside the other keys in the JSON.
    """

    id: str
    backbone: str
    head: str
    views: str
    metrics: dict[str, Any]
    bundle: str | None = None
    architecture: str = ""
    loss: str = ""
    head_label: str = ""
    fit: dict[str, Any] = field(default_factory=dict)

    def metric(self, split: str, name: str) -> float | None:
        value = (self.metrics.get(split) or {}).get(name)
        return None if value is None else float(value)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "architecture": self.architecture or self.backbone, "backbone": self.backbone,
                "head": self.head, "loss": self.loss, "head_label": self.head_label, "views": self.views,
                "metrics": self.metrics, "bundle": self.bundle, **self.fit}

    @classmethod
    def from_dict(cls, data: Any) -> "ResultRow":
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("id", "backbone", "head")):
            raise TrainError(f"a result row needs an id, a backbone and a head, got {data!r:.120}")
        if not isinstance(data.get("metrics", {}), dict):
            raise TrainError(f"result row {data['id']} has metrics that are not an object")
        named = {"id", "architecture", "backbone", "head", "loss", "head_label", "views", "metrics", "bundle"}
        return cls(id=data["id"], backbone=data["backbone"], head=data["head"], views=str(data.get("views", "single")),
                   metrics=data.get("metrics", {}), bundle=data.get("bundle"), architecture=str(data.get("architecture") or ""),
                   loss=str(data.get("loss") or ""), head_label=str(data.get("head_label") or ""),
                   fit={k: v for k, v in data.items() if k not in named})


@dataclass
class RunResults:
    """Everything a run reports. dataset: name, root, fingerprint, split_sizes, map_size_km,
    members (joined runs); run: view modes, epochs, seed, processes, device; config: the
    resolved ExperimentConfig; stages: [{"name", "seconds"}]."""

    dataset: dict[str, Any]
    run: dict[str, Any]
    results: list[ResultRow]
    config: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    stages: list[dict[str, Any]] = field(default_factory=list)
    geoai_version: str | None = None
    format: str = RESULTS_FORMAT

    @property
    def dataset_name(self) -> str:
        return str(self.dataset["name"])

    def maps(self) -> list[tuple[str, Path]]:
        """(name, folder) of every dataset the run trained on: each member of a joined run."""
        members = [m for m in self.dataset.get("members") or [] if isinstance(m, dict)]
        found = members or [self.dataset]
        return [(str(m.get("name", "")), Path(str(m.get("root") or "")).expanduser()) for m in found]

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "geoai_version": self.geoai_version, "dataset": self.dataset,
                "run": self.run, "config": self.config, "notes": self.notes, "stages": self.stages,
                "results": [row.to_dict() for row in self.results]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any, where: str = "results") -> "RunResults":
        if not isinstance(data, dict) or not isinstance(data.get("results"), list) \
                or not isinstance(data.get("dataset"), dict) or "name" not in data["dataset"]:
            raise TrainError(f"{where} is not the results of `python -m train` (it lacks the "
                             "'results' list or the dataset's name)")
        if data.get("format", RESULTS_FORMAT) != RESULTS_FORMAT:
            raise TrainError(f"{where} has results format {data.get('format')!r:.60}; this version reads "
                             f"{RESULTS_FORMAT!r}")
        return cls(dataset=data["dataset"], run=data.get("run") or {},
                   results=[ResultRow.from_dict(row) for row in data["results"]], config=data.get("config") or {},
                   notes=list(data.get("notes") or []), stages=list(data.get("stages") or []),
                   geoai_version=data.get("geoai_version"))

    @classmethod
    def read(cls, run_dir: str | Path) -> "RunResults":
        """RUN/results.json; TrainError when the folder is not a finished run."""
        path = Path(run_dir) / RESULTS_FILE
        if not path.is_file():
            raise TrainError(f"{run_dir} is not a training run: {path} is missing "
                             "(run `python -m train --data DIR --out RUN` first)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TrainError(f"{path} is not valid JSON: {exc}") from None
        return cls.from_dict(data, str(path))
