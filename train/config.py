"""`ExperimentConfig`: every setting of a training run, with its precedence rules.

Defaults < a JSON file (`--config FILE.json`) < command-line flags. The resolved config
is written into results.json so a run can be repeated exactly.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geoai.bundle_config import VIEW_MODES
from train.errors import TrainError

STUDY_BACKBONES = ("beit", "resnet50")


def _default_heads() -> list[str]:
    from geoai.models.registry import default_heads  # loads torch: not needed for `--help`

    return default_heads()


@dataclass
class ExperimentConfig:
    """The experiment grid and its training hyper-parameters.

    backbones: known names, local checkpoint folders or hub ids.
    heads: head types and baselines of the head registry (geoai.models.registry); by default
        every default one.
    fusion: the view modes to run; "mean" is only run when places have several views.
    lr: Adam learning rate of a head on frozen embeddings; with `finetune`, the head uses
        `finetune_head_lr` and the backbone `finetune_backbone_lr` (the study's 1e-4 / 1e-5).
    head_params: extra keyword arguments per head type for build_head, e.g.
        {"geocell": {"tau_km": 75, "top_k": 5}}, and "cells": {"min_samples", "max_samples"}
        for the quadtree cells (default: 10-100 per cell, smaller for small datasets).
    """

    # metadata["help"] is the option's help text (`python -m train --help`); train.cli derives
    # every run flag (--batch-size for batch_size, ...) and its shown default from these fields.
    data: str | list[str] | None = field(default=None, metadata={
        "help": "dataset folder (metadata.csv beside the images) or a folder of datasets; repeat it to train on "
                "the union (each place keeps its own dataset's split)"})
    name: str | None = field(default=None, metadata={
        "help": "name of the joined dataset (default: its datasets' names joined by '+'); published bundles "
                "are called NAME-<backbone>"})
    out: str = field(default="runs/latest", metadata={"help": "run folder to write"})
    backbones: list[str] = field(default_factory=lambda: list(STUDY_BACKBONES), metadata={
        "help": "comma-separated backbone names, checkpoint folders or hub ids (see `python -m train backbones`)"})
    heads: list[str] = field(default_factory=_default_heads, metadata={
        "help": "comma-separated heads and baselines (default: every default one of the head registry)"})
    fusion: list[str] = field(default_factory=lambda: list(VIEW_MODES), metadata={
        "help": "view modes: single (one guess per image), mean (a place's views averaged; only run with "
                "multi-view places)"})
    epochs: int = field(default=100, metadata={"help": "maximum epochs per head"})
    patience: int = field(default=10, metadata={"help": "early-stopping patience in epochs"})
    batch_size: int = field(default=64, metadata={"help": "batch size"})
    lr: float = field(default=1e-3, metadata={"help": "head learning rate on frozen embeddings"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    finetune: bool = field(default=False, metadata={
        "help": "fine-tune the whole backbone (slow without a GPU)"})
    finetune_backbone_lr: float = field(default=1e-5, metadata={"help": "backbone learning rate with --finetune"})
    finetune_head_lr: float = field(default=1e-4, metadata={"help": "head learning rate with --finetune"})
    device: str | None = field(default=None, metadata={
        "help": "cpu, cuda or cuda:N (default: cuda when available)"})
    cache_dir: str | None = field(default=".cache/embeddings", metadata={"help": "embedding cache folder"})
    skip_bad: bool = field(default=False, metadata={
        "help": "drop bad dataset rows (listed in the results) instead of stopping"})
    num_workers: int = field(default=2, metadata={"help": "image decoding workers (0: in this process)"})
    split_fractions: list[float] = field(default_factory=lambda: [0.6, 0.2, 0.2], metadata={
        "help": "train, validation and test fractions of the places"})
    head_params: dict[str, dict[str, Any]] = field(default_factory=dict, metadata={
        "help": 'extra settings per head type as a JSON object, e.g. \'{"geocell": {"tau_km": 75}}\''})

    def validate(self) -> "ExperimentConfig":
        """Raise TrainError with a readable message when a value cannot work."""
        # Imported here: they load torch, which `python -m train --help` does without.
        from geoai.data.splits import validate_fractions
        from geoai.models.registry import head_names
        from train.distributed import check_device

        if self.data is None:
            raise TrainError("no dataset given: pass --data DIR (a folder with metadata.csv and images)")
        folders = self.data if isinstance(self.data, list) else [self.data]
        if not folders or not all(isinstance(f, str) and f for f in folders):
            raise TrainError(f"data must be a folder path or a list of them, got {self.data!r}")
        if not isinstance(self.out, str):
            raise TrainError(f"out must be a folder path (a string), got {self.out!r}")
        if self.name is not None and (not isinstance(self.name, str) or not self.name.strip()
                                      or "/" in self.name or self.name.startswith(".")):
            raise TrainError(f"name must be a plain folder-safe name such as 'world', got {self.name!r}")
        if not self.backbones:
            raise TrainError("no backbones given: pass --backbones, e.g. --backbones beit,resnet50 "
                             "(even the medoid baseline's bundle names the backbone the game loads)")
        if not self.heads:
            raise TrainError("no heads given: pass --heads, e.g. --heads linear-mse,grid")
        unknown_fusion = [f for f in self.fusion if f not in VIEW_MODES]
        if unknown_fusion or not self.fusion:
            raise TrainError(f"unknown fusion mode(s) {unknown_fusion or self.fusion}; "
                             f"choose from {', '.join(VIEW_MODES)}")
        for name in ("epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise TrainError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.patience < 1:
            raise TrainError(f"patience must be at least 1, got {self.patience}")
        for name in ("lr", "finetune_backbone_lr", "finetune_head_lr"):
            if not float(getattr(self, name)) > 0:
                raise TrainError(f"{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        allowed = {*head_names(baseline=False), "cells"}
        unknown = sorted(set(self.head_params) - allowed)
        if unknown or not all(isinstance(v, dict) for v in self.head_params.values()):
            raise TrainError(f"head_params must map head types ({', '.join(sorted(allowed))}) to objects of "
                             f"settings; got {self.head_params!r}")
        if self.num_workers < 0:
            raise TrainError(f"num-workers must be 0 (decode in this process) or more, got {self.num_workers}")
        try:
            validate_fractions(self.split_fractions)
        except (TypeError, ValueError) as exc:
            raise TrainError(f"split_fractions must be 3 numbers (train, val, test): {exc}") from None
        check_device(self.device)
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy."""
        return dataclasses.asdict(self)


def _split_list(value: str | list[str]) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


LIST_FIELDS = ("backbones", "heads", "fusion")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON config file into a dict of ExperimentConfig fields, rejecting unknown keys."""
    path = Path(path)
    if not path.is_file():
        raise TrainError(f"config file {path} does not exist")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TrainError(f"config file {path} is not valid JSON: {exc}") from None
    if not isinstance(values, dict):
        raise TrainError(f"config file {path} must hold a JSON object of settings, got {type(values).__name__}")
    known = {f.name for f in dataclasses.fields(ExperimentConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise TrainError(f"config file {path} has unknown setting(s) {unknown}; known: {sorted(known)}")
    return values


def build_config(file_values: dict[str, Any] | None = None,
                 overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """Defaults, then the file's values, then the given overrides (None means 'not given')."""
    values: dict[str, Any] = {}
    for source in (file_values or {}, overrides or {}):
        for key, value in source.items():
            if value is None:
                continue
            values[key] = _split_list(value) if key in LIST_FIELDS else value
    if isinstance(values.get("data"), list) and len(values["data"]) == 1:
        values["data"] = values["data"][0]  # one folder reads as it always did
    try:
        config = ExperimentConfig(**values)
    except TypeError as exc:
        raise TrainError(f"bad settings: {exc}") from None
    for name, kind in (("epochs", int), ("patience", int), ("batch_size", int), ("seed", int),
                       ("num_workers", int), ("lr", float), ("finetune_backbone_lr", float),
                       ("finetune_head_lr", float)):
        try:
            setattr(config, name, kind(getattr(config, name)))
        except (TypeError, ValueError):
            raise TrainError(f"{name} must be a number, got {getattr(config, name)!r}") from None
    return config
