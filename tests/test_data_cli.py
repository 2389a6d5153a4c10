"""`python -m geoai.data check` and `import-study`: readable output and exit codes."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures_data import SHARED_DATASETS as EXPECTED
from fixtures_data import build_study_folder, make_good_folder, write_metadata, write_truncated_jpeg
from geoai.data.cli import main
from geoai.progress import progress_bar

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "geoai.data", *args], capture_output=True,
                          text=True, cwd=REPO_ROOT, timeout=120)


@pytest.mark.slow
def test_check_every_shared_folder(shared_data, capsys):
    """Full decode of every shared image folder: right counts, zero problems, exit 0."""
    image_folders = sorted(p.name for p in shared_data.iterdir() if (p / "metadata.csv").is_file())
    assert image_folders == sorted(EXPECTED)
    for name in image_folders:
        code = main(["check", str(shared_data / name)])
        out = capsys.readouterr().out
        images, places, countries = EXPECTED[name]
        assert code == 0, out
        assert f"images:          {images:,}\n" in out
        assert f"places:          {places:,} (location_id)" in out
        assert f"countries:       {countries} " in out
        assert "problems:        none" in out and "OK: dataset is usable" in out


def test_check_seed_annotations_explains_and_exits_1(shared_data):
    result = run_module("check", str(shared_data / "seed-europe-locations"))
    assert result.returncode == 1
    assert "import-study" in result.stderr and "without images" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_check_missing_dir_is_usage_error(tmp_path):
    result = run_module("check", str(tmp_path / "nope"))
    assert result.returncode == 2 and "not an existing folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_bad_rows_unusable_unless_skipped(tmp_path, capsys):
    root = make_good_folder(tmp_path / "ds", places=3, views=1)
    write_truncated_jpeg(root / "images/cut.jpg")
    rows = [["images/p0_0.jpg", "45", "15", "0000", "0", ""], ["images/p1_0.jpg", "999", "15", "1", "", ""],
            ["images/cut.jpg", "45", "15", "2", "", ""], ["images/p2_0.jpg", "45", "15", "3", "", ""]]
    write_metadata(root, rows)
    assert main(["check", str(root)]) == 1
    out = capsys.readouterr().out
    assert "row 2 (images/p1_0.jpg): latitude 999 is outside" in out
    assert "row 3 (images/cut.jpg): image is truncated" in out
    assert "UNUSABLE as is" in out and "images:          2\n" in out

    assert main(["check", str(root), "--skip-bad", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["usable"] and report["summary"]["images"] == 2
    assert [(p["row"], p["kind"]) for p in report["problems"]] == [(2, "bad_coordinate"), (3, "truncated_image")]


def test_check_nothing_usable_exits_1_even_when_skipping(tmp_path, capsys):
    write_metadata(tmp_path, [["missing.jpg", "1", "2", "a", "", ""]])
    assert main(["check", str(tmp_path), "--skip-bad"]) == 1
    assert "no usable rows" in capsys.readouterr().out


def test_check_missing_column_exits_1_without_traceback(tmp_path):
    write_metadata(tmp_path, [["a.jpg", "1"]], header=["file_name", "lat"])
    result = run_module("check", str(tmp_path))
    assert result.returncode == 1 and "lon missing" in result.stderr
    assert "Traceback" not in result.stderr


def test_import_study_command(tmp_path, capsys):
    paths = ["3,45.5,15.25/glued.jpg", "3,45.75,15.5/glued.jpg"]
    build_study_folder(tmp_path / "src", paths)
    assert main(["import-study", str(tmp_path / "src"), str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "images:          6\n" in out and "places:          2 (location_id)" in out
    assert (tmp_path / "out" / "metadata.csv").is_file()
    # A second import into the now non-empty folder is refused with a clear message.
    assert main(["import-study", str(tmp_path / "src"), str(tmp_path / "out")]) == 1
    assert "not empty" in capsys.readouterr().err
    assert main(["import-study", str(tmp_path / "nope"), str(tmp_path / "out2")]) == 2
    assert main(["import-study", str(tmp_path / "src"), str(tmp_path / "out3"),
                 "--annotations", str(tmp_path / "src")]) == 2  # a folder, not a CSV
    assert "is not an existing file" in capsys.readouterr().err


def test_check_in_a_log_has_its_summary_and_no_progress_bar_codes(tmp_path):
    """Piped into a log (stderr not a terminal), no bar redraws; the summary starts its own line."""
    result = run_module("check", str(make_good_folder(tmp_path / "good")))
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr and "\x1b[" not in result.stderr
    assert result.stdout.startswith("Dataset good ")
    assert "places:          4 (location_id)" in result.stdout
    assert "views per place: min 2, mean 2.00, max 2" in result.stdout


def test_progress_bars_draw_on_a_terminal_only():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for stream, drawn in ((Terminal(), True), (io.StringIO(), False)):
        for _ in progress_bar(range(3), desc="step", file=stream):
            pass
        assert ("step: 100%" in stream.getvalue()) is drawn
    quiet = Terminal()
    list(progress_bar(range(3), show=False, file=quiet))
    assert quiet.getvalue() == ""
