"""`python -m geoai.data`: check an image folder, or import the study's dataset.

Exit codes: 0 usable, 1 unusable dataset (problems without --skip-bad, or no usable
row), 2 usage error (e.g. the folder does not exist). Expected bad input never prints a
traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from geoai.data.dataset import GeoDataset
from geoai.data.errors import DatasetError
from geoai.data.folder import load_image_folder
from geoai.data.report import format_problems, format_summary

EXIT_OK, EXIT_UNUSABLE, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m geoai.data", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="validate an image folder (decodes every image)")
    check.add_argument("dir", type=Path, help="folder holding metadata.csv and the images")
    check.add_argument("--skip-bad", action="store_true",
                       help="accept the dataset without its bad rows (they are still listed)")
    check.add_argument("--json", action="store_true", help="print the summary as JSON")
    study = commands.add_parser("import-study", help="convert the study's zip/folder to an image folder")
    study.add_argument("src", type=Path, help="the study's zip, or the folder it unpacks to")
    study.add_argument("out", type=Path, help="new (or empty) output folder")
    study.add_argument("--annotations", type=Path,
                       help="annotation CSV path,square_id,lat,lon (default: found inside SRC)")
    study.add_argument("--skip-bad", action="store_true", help="drop bad places instead of failing")
    study.add_argument("--json", action="store_true", help="print the summary as JSON")
    study.add_argument("--max-total-gib", type=float, default=64.0,
                       help="refuse sources whose images declare more than this, uncompressed (default 64)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "check":
        return _check(args.dir, skip_bad=args.skip_bad, as_json=args.json)
    return _import_study(args.src, args.out, annotations=args.annotations,
                         skip_bad=args.skip_bad, as_json=args.json, max_total_gib=args.max_total_gib)


def _check(root: Path, *, skip_bad: bool, as_json: bool) -> int:
    if not root.is_dir():
        print(f"error: {root} is not an existing folder", file=sys.stderr)
        return EXIT_USAGE
    try:
        # Always collect everything, so the report can show the summary and every problem.
        dataset = load_image_folder(root, on_error="skip", check_images="full", progress=True)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    usable = len(dataset) > 0 and (skip_bad or not dataset.problems)
    if as_json:
        payload = {"summary": dataset.summary(), "usable": usable,
                   "problems": [dataclasses.asdict(p) for p in dataset.problems]}
        print(json.dumps(payload, indent=2))
    else:
        print(format_summary(dataset.summary()))
        print(format_problems(dataset.problems))
        print(_verdict(dataset, usable))
    return EXIT_OK if usable else EXIT_UNUSABLE


def _verdict(dataset: GeoDataset, usable: bool) -> str:
    if len(dataset) == 0:
        return "UNUSABLE: no usable rows"
    if not dataset.problems:
        return "OK: dataset is usable"
    if usable:
        return f"OK with --skip-bad: {len(dataset):,} usable rows; the rows listed above are left out"
    return ("UNUSABLE as is: fix the rows listed above, or pass --skip-bad to use the "
            f"{len(dataset):,} good rows without them")


def _import_study(src: Path, out: Path, *, annotations: Path | None, skip_bad: bool,
                  as_json: bool, max_total_gib: float = 64.0) -> int:
    if not src.exists():
        print(f"error: {src} does not exist", file=sys.stderr)
        return EXIT_USAGE
    if annotations is not None and not annotations.is_file():
        print(f"error: annotation file {annotations} is not an existing file", file=sys.stderr)
        return EXIT_USAGE
    if not max_total_gib > 0:
        print(f"error: --max-total-gib must be positive, not {max_total_gib}", file=sys.stderr)
        return EXIT_USAGE
    from geoai.data.study import ImportLimits, import_study  # loads reverse_geocode only when importing

    try:
        dataset = import_study(src, out, annotations=annotations,
                               on_error="skip" if skip_bad else "raise", progress=True,
                               limits=ImportLimits(max_total_bytes=int(max_total_gib * 2**30)))
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    if as_json:
        print(json.dumps({"summary": dataset.summary(),
                          "problems": [dataclasses.asdict(p) for p in dataset.problems]}, indent=2))
    else:
        print(f"Imported {src} into {out}")
        print(format_summary(dataset.summary()))
        print(format_problems(dataset.problems))
    return EXIT_OK
