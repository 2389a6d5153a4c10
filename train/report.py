"""RUN/results.md (the study's table, extended) and RUN/results.json (the same, machine-readable)."""
from __future__ import annotations

from pathlib import Path

from geoai.atomic import write_text_atomic
from train.results import RESULTS_FILE, ResultRow, RunResults

VIEW_LABELS = {"single": "single", "mean": "fused (mean)"}


def _km(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def results_table(rows: list[ResultRow]) -> str:
    """The Markdown table: one line per configuration."""
    header = ["Architecture", "Loss", "Head", "Views", "Mean Train Haversine (km)",
              "Mean Val Haversine (km)", "Mean Test Haversine (km)", "Median Test (km)",
              "Test within 25 km", "Test within 200 km", "Test within 750 km",
              "Mean GeoGuessr points (test)", "Country accuracy (test)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        m = row.metrics
        test = m.get("test", {})
        lines.append("| " + " | ".join([
            row.architecture, row.loss, row.head_label, VIEW_LABELS.get(row.views, row.views),
            _km(m.get("train", {}).get("mean_km")), _km(m.get("val", {}).get("mean_km")),
            _km(test.get("mean_km")), _km(test.get("median_km")),
            _pct(test.get("within_25km")), _pct(test.get("within_200km")), _pct(test.get("within_750km")),
            _num(test.get("mean_points")), _pct(test.get("country_accuracy")),
        ]) + " |")
    return "\n".join(lines)


def per_dataset_table(rows: list[ResultRow]) -> str:
    """Each joined dataset's own test split, one line per configuration and dataset ("" for one dataset)."""
    header = ["Architecture", "Head", "Views", "Dataset", "Test n", "Mean (km)", "Median (km)",
              "Within 25 km", "Within 200 km", "Within 750 km", "Within 2500 km"]
    lines = []
    for row in rows:
        for name, splits in (row.metrics.get("datasets") or {}).items():
            test = splits.get("test")
            if not test:
                continue
            lines.append("| " + " | ".join([
                row.architecture, row.head_label, VIEW_LABELS.get(row.views, row.views), name,
                _num(test.get("n")), _km(test.get("mean_km")), _km(test.get("median_km")),
                _pct(test.get("within_25km")), _pct(test.get("within_200km")), _pct(test.get("within_750km")),
                _pct(test.get("within_2500km"))]) + " |")
    if not lines:
        return ""
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *lines])


def render_markdown(results: RunResults) -> str:
    """results.md text."""
    ds = results.dataset
    sizes = ds["split_sizes"]
    run = results.run
    lines = [
        f"# Geolocation results: {ds['name']}",
        "",
        f"- Dataset: `{ds['name']}` ({ds['root']}), fingerprint `{ds['fingerprint']}`",
        "- Splits (by place): " + ", ".join(
            f"{split} {sizes[split]['images']} images / {sizes[split]['places']} places"
            for split in ("train", "val", "test")),
        f"- Map size D = {ds['map_size_km']:,.1f} km (GeoGuessr points: 5000 * exp(-10 d / D))",
        f"- Views: {', '.join(VIEW_LABELS.get(v, v) for v in run['fusion'])}"
        + (f" ({run['fusion_note']})" if run.get("fusion_note") else ""),
        f"- Backbones {'fine-tuned' if run['finetune'] else 'frozen'}; epochs <= {run['epochs']}, "
        f"patience {run['patience']}, seed {run['seed']}, {run['processes']} process(es), device {run['device']}",
    ]
    for note in results.notes:
        lines.append(f"- {note}")
    lines += ["", "## Results", "", results_table(results.results), "",
              "Shares and accuracies are on the test split; distances are great-circle (Haversine) km.", ""]
    per_dataset = per_dataset_table(results.results)
    if per_dataset:
        lines += ["## Each dataset's test split", "", per_dataset, ""]
    lines += ["## Wall time per stage", "", "| Stage | Seconds |", "|---|---|"]
    lines += [f"| {s['name']} | {s['seconds']:.2f} |" for s in results.stages]
    lines += ["", f"Total: {sum(s['seconds'] for s in results.stages):.1f} s", ""]
    return "\n".join(lines)


def write_reports(run_dir: Path, results: RunResults) -> tuple[Path, Path]:
    """Write RUN/results.json and RUN/results.md; returns their paths."""
    run_dir = Path(run_dir)
    json_path, md_path = run_dir / RESULTS_FILE, run_dir / "results.md"
    write_text_atomic(json_path, results.to_json())
    write_text_atomic(md_path, render_markdown(results))
    return json_path, md_path
