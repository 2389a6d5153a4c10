"""`python -m geoai.bench study-zip [--places N] [--pad-mib M] [--code DIR]`: time, peak memory
and disk written by the study importer for a generated zip of padded JPEGs (tiny photos
followed by megabytes of zeros: a few MiB zipped, gigabytes declared) against a normal zip
of the same places. Each import runs in a fresh process so its peak RSS is its own.
`--code DIR` imports geoai from another checkout, to compare versions.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from PIL import Image

CHILD = r"""
import json, sys, time
from pathlib import Path
from geoai.data import DatasetError, import_study
def peak_mib():  # this process's own peak RSS (ru_maxrss would include the parent's before exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
src, out = Path(sys.argv[1]), Path(sys.argv[2])
before_rss = peak_mib()  # libraries loaded
start = time.perf_counter()
try:
    dataset = import_study(src, out, on_error="skip")
    outcome = {"places": int(dataset.frame["location_id"].nunique()),
               "problems": sorted({p.kind for p in dataset.problems})}
except DatasetError as exc:
    outcome = {"places": 0, "error": "refused: " + ", ".join(sorted({p.kind for p in exc.problems}))}
except Exception as exc:  # what the benchmark reports, whatever the version does
    outcome = {"places": 0, "crash": f"{type(exc).__name__}: {exc}"[:160]}
outcome["seconds"] = round(time.perf_counter() - start, 2)
outcome["peak_rss_mib"] = round(peak_mib(), 1)
outcome["import_rss_mib"] = round(outcome["peak_rss_mib"] - before_rss, 1)
outcome["written_mib"] = round(sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20, 1) if out.exists() else 0.0
print(json.dumps(outcome))
"""


def _photo(seed: int) -> bytes:
    image = Image.new("RGB", (96, 64), ((seed * 40) % 256, 120, 80))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def write_study_zip(path: Path, places: int, pad_bytes: int) -> int:
    """A study zip of `places` folders with three views each, every view padded with
    `pad_bytes` zeros (0: a normal zip); returns the declared uncompressed bytes."""
    declared = 0
    padding = bytes(pad_bytes)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for i in range(places):
            folder = f"{i % 88},{45 + i * 0.01:.4f},{15 + i * 0.01:.4f}"
            for heading in range(3):
                data = _photo(i * 3 + heading) + padding
                archive.writestr(f"{folder}/{heading}.jpg", data)
                declared += len(data)
    return declared


def run_import(src: Path, out: Path, code: Path | None) -> dict:
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-c", CHILD, str(src), str(out)], env=env,
                          capture_output=True, text=True, cwd=code or None)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"crash": (done.stderr.strip().splitlines() or ["?"])[-1][:160]}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geoai.bench study-zip", description=__doc__.splitlines()[0])
    parser.add_argument("--places", type=int, default=25, help="places per zip (default 25, 3 views each)")
    parser.add_argument("--pad-mib", type=float, default=20.0, help="zeros after each padded view (default 20)")
    parser.add_argument("--code", type=Path, help="import geoai from this checkout instead")
    args = parser.parse_args(argv)
    if args.places < 1 or args.pad_mib <= 0:
        parser.error("--places must be at least 1 and --pad-mib positive")
    results = {}
    with tempfile.TemporaryDirectory(prefix="geoai-study-zip-") as tmp:
        for name, pad in (("normal", 0), ("padded", int(args.pad_mib * 2**20))):
            src = Path(tmp) / f"{name}.zip"
            declared = write_study_zip(src, args.places, pad)
            result = {"zip_mib": round(src.stat().st_size / 2**20, 2),
                      "declared_mib": round(declared / 2**20, 1),
                      **run_import(src, Path(tmp) / f"out-{name}", args.code)}
            results[name] = result
            src.unlink()
            outcome = result.get("crash") or result.get("error") or \
                f"{result['places']} places imported, problems: {', '.join(result['problems']) or 'none'}"
            print(f"{name:>7}: zip {result['zip_mib']:>7.2f} MiB  declared {result['declared_mib']:>8,.1f} MiB  "
                  f"{result.get('seconds', float('nan')):>6.2f} s  peak RSS {result.get('peak_rss_mib', float('nan')):>7.1f} MiB "
                  f"(+{result.get('import_rss_mib', float('nan')):.1f} importing)  "
                  f"written {result.get('written_mib', float('nan')):>7.1f} MiB  {outcome}", flush=True)
    print(json.dumps(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
