"""`python -m geoai.bench [--quick] [--tiny] [--batch 32] [--iters N] [--json-only]`.

Prints progress and a table on stderr/stdout, and as the very last line of stdout one JSON
object with the headline numbers (beit_baseline_ips, beit_fast_ips, resnet50_baseline_ips,
resnet50_fast_ips, min_cosine, max_drift_km, round_p95_ms, peak_rss_mb, ...).
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import warnings
from pathlib import Path


# Each subcommand is a module with its own main(argv) and --help.
SUBCOMMANDS = {
    "maps": "geoai.bench.maps",  # map loading
    "insight": "geoai.bench.insight",  # belief and saliency time per photo
    "serve": "geoai.bench.serve",  # load test of the running game
    "serve-memory": "geoai.bench.serve_memory",  # the game process's RSS and round time, precomputed vs live
    "study-zip": "geoai.bench.study_zip",  # study import of a padded zip vs a normal one
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in SUBCOMMANDS:
        module = importlib.import_module(SUBCOMMANDS[argv[0]])
        return module.main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m geoai.bench",
        description="Speed of BEiT-base and ResNet-50 (fast path vs fp32), embedding pipeline and game rounds.",
        epilog="Other benchmarks (each with its own --help): " + ", ".join(SUBCOMMANDS) + ".")
    parser.add_argument("--quick", action="store_true", help="batch 8, 2 iterations, 10 game rounds (CI)")
    parser.add_argument("--tiny", action="store_true", help="miniature models: checks the machinery only")
    parser.add_argument("--batch", type=int, default=32, help="batch size for throughput (default 32)")
    parser.add_argument("--iters", type=int, default=3, help="timed rounds per measurement (default 3)")
    parser.add_argument("--rounds", type=int, default=20, help="game rounds (default 20)")
    parser.add_argument("--data", type=Path,
                        help="image folder with metadata.csv for real photos (default GEOAI_DATA_DIR/streetview-world-tiles)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (default 2)")
    parser.add_argument("--force-fp32", action="store_true", help="measure the fp32 path as the fast one")
    parser.add_argument("--json-only", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.iters < 1 or args.rounds < 1 or args.workers < 0:
        parser.error("--batch, --iters and --rounds must be at least 1, --workers at least 0")
    # Imported after parsing: torch and transformers take seconds, and --help needs neither.
    from geoai.bench.photos import PhotoError
    from geoai.bench.report import format_table
    from geoai.bench.runner import BenchOptions, run_benchmark

    opts = BenchOptions(batch=args.batch, iters=args.iters, rounds=args.rounds, quick=args.quick,
                        tiny=args.tiny, data=args.data, workers=args.workers, force_fp32=args.force_fp32)
    warnings.filterwarnings("ignore")  # transformers/torch deprecation chatter would bury the table
    log = (lambda _msg: None) if args.json_only else (lambda msg: print(f"[bench] {msg}", file=sys.stderr, flush=True))
    try:
        results = run_benchmark(opts, log)
    except PhotoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.json_only:
        print(format_table(results))
    print(json.dumps(results["summary"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
