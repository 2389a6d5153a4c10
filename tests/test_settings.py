"""geoai.settings: every GEOAI_* variable read when asked, with its default, and documented once."""
from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from geoai import settings

REPO = settings.REPO_ROOT
READERS = re.compile(r"""(environ(\.get)?\s*[(\[]\s*|getenv\s*\(\s*)["']GEOAI_""")


def test_defaults_when_unset_or_empty(monkeypatch):
    for name in ("GEOAI_DATA_DIR", "GEOAI_MODELS_DIR", "GEOAI_CHECKPOINTS", "GEOAI_UPLOADS_DIR",
                 "GEOAI_DATABASE_URL", "GEOAI_BASEMAP", "GEOAI_SALIENCY", "GEOAI_PUBLIC", "GEOAI_PRECISION",
                 "GEOAI_FORCE_FP32", "GEOAI_COMPILE", "GEOAI_THREADS"):
        monkeypatch.setenv(name, "")  # empty counts as unset
    assert settings.data_dir() == REPO.parent / "shared" / "data"
    assert settings.models_dir() == REPO / "models"
    assert settings.checkpoints_dir() == REPO / "checkpoints"
    assert settings.uploads_dir() == REPO / "uploads"
    assert settings.database_url() == f"sqlite:///{REPO / 'db' / 'geoai.sqlite'}"
    assert (settings.basemap(), settings.saliency(), settings.public_maps()) == ("auto", "auto", None)
    assert (settings.precision(), settings.force_fp32(), settings.compile_override(), settings.threads()) \
        == ("fp32", False, None, None)


def test_values_are_read_at_call_time(monkeypatch, tmp_path):
    monkeypatch.setenv("GEOAI_DATA_DIR", str(tmp_path / "maps"))
    monkeypatch.setenv("GEOAI_MODELS_DIR", "~/bundles")
    assert settings.data_dir() == tmp_path / "maps"
    assert settings.models_dir() == Path.home() / "bundles"
    monkeypatch.setenv("GEOAI_DATA_DIR", str(tmp_path / "other"))
    assert settings.data_dir() == tmp_path / "other"  # no re-import needed
    monkeypatch.setenv("GEOAI_BASEMAP", "OFF")
    monkeypatch.setenv("GEOAI_COMPILE", "0")
    monkeypatch.setenv("GEOAI_THREADS", " 3 ")
    monkeypatch.setenv("GEOAI_PUBLIC", "1")
    assert (settings.basemap(), settings.compile_override(), settings.threads()) == ("off", False, 3)
    assert settings.public_maps() == ("osv5m-mapillary", "commons-cities")
    monkeypatch.setenv("GEOAI_PUBLIC_MAPS", "a b")
    assert settings.public_maps() == ("a", "b")


def test_bad_values_are_explained_or_fall_back(monkeypatch, caplog):
    monkeypatch.setenv("GEOAI_THREADS", "two")
    with pytest.raises(settings.SettingError, match="GEOAI_THREADS must be a positive integer, got 'two'"):
        settings.threads()
    monkeypatch.setenv("GEOAI_SALIENCY", "sometimes")
    assert settings.saliency() == "auto" and "GEOAI_SALIENCY='sometimes'" in caplog.text
    monkeypatch.setenv("GEOAI_BASEMAP", "maybe")
    assert settings.basemap() == "auto"


def test_checkpoints_are_found_where_the_setting_says_now(monkeypatch, tmp_path):
    from geoai.models.backbones import resolve_backbone

    monkeypatch.setenv("GEOAI_CHECKPOINTS", str(tmp_path))
    assert resolve_backbone("mobilenetv2-1.0-deepsort").source == str(tmp_path / "mobilenetv2-1.0-deepsort")


def _sources():
    for folder in ("geoai", "app", "train", "db", "scripts"):
        yield from (REPO / folder).rglob("*.py")


def test_only_the_settings_module_reads_geoai_variables():
    assert READERS.search('x = os.environ.get("GEOAI_THREADS", "")') and READERS.search("os.getenv('GEOAI_X')")
    readers = [str(path.relative_to(REPO)) for path in _sources() if READERS.search(path.read_text())]
    assert readers == []


def test_repository_root_is_computed_once():
    computed = [str(path.relative_to(REPO)) for path in _sources()
                if re.search(r"__file__\)\.resolve\(\)\.parents\[", path.read_text())]
    assert computed == ["geoai/settings.py"]


def _readme_settings() -> list[str]:
    lines = (REPO / "README.md").read_text().split("## Configuration", 1)[1].splitlines()
    start = lines.index("| variable | default | what |")
    rows = itertools.takewhile(lambda line: line.startswith("|"), lines[start + 2:])
    return re.findall(r"`(GEOAI_[A-Z0-9_]+)`", "\n".join(row.split("|")[1] for row in rows))


def test_readme_table_documents_every_setting_once():
    documented = _readme_settings()
    assert len(documented) == len(set(documented))
    read = set(re.findall(r'"(GEOAI_[A-Z0-9_]+)"', (REPO / "geoai" / "settings.py").read_text()))
    read |= set(re.findall(r"\$\{(GEOAI_[A-Z0-9_]+)", (REPO / "scripts" / "play.sh").read_text()))
    assert read == set(documented)
