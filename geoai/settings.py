"""Every GEOAI_* environment setting, read when a function is called (never at import).

Reading at call time lets a test, a benchmark or a long-lived server change a setting
without re-importing anything. README.md's Configuration table documents each one; an
empty value counts as unset. Nothing else in geoai, app, train or db reads GEOAI_* variables.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("geoai.settings")

REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout (or source tree) holding geoai/
PUBLIC_MAPS_DEFAULT = ("osv5m-mapillary", "commons-cities")  # images that may be redistributed
SALIENCY_MODES = ("auto", "on-request")
BASEMAP_MODES = ("auto", "on", "off")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


class SettingError(ValueError):
    """An environment setting holds a value that cannot work; the message names it."""


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _flag(name: str) -> bool | None:
    """A yes/no setting: None when unset; "1"/"true"/"yes"/"on" (any case) mean yes."""
    value = _env(name)
    return None if value is None else value.lower() in _TRUE


def _path(name: str, default: Path) -> Path:
    return Path(_env(name) or default).expanduser()


def data_dir() -> Path:
    """GEOAI_DATA_DIR: the folder of datasets (one map per folder with a metadata.csv)."""
    return _path("GEOAI_DATA_DIR", REPO_ROOT.parent / "shared" / "data")


def models_dir() -> Path:
    """GEOAI_MODELS_DIR: the bundles the game plays with and their predictions/."""
    return _path("GEOAI_MODELS_DIR", REPO_ROOT / "models")


def checkpoints_dir() -> Path:
    """GEOAI_CHECKPOINTS: the converted offline backbones."""
    return _path("GEOAI_CHECKPOINTS", REPO_ROOT / "checkpoints")


def uploads_dir() -> Path:
    """GEOAI_UPLOADS_DIR: where photos people chose to keep are stored."""
    return _path("GEOAI_UPLOADS_DIR", REPO_ROOT / "uploads")


DEFAULT_SQLITE_PATH = REPO_ROOT / "db" / "geoai.sqlite"


def database_url() -> str:
    """GEOAI_DATABASE_URL: the leaderboard's SQLAlchemy URL (default: a SQLite file in db/)."""
    return _env("GEOAI_DATABASE_URL") or f"sqlite:///{DEFAULT_SQLITE_PATH}"


def basemap() -> str:
    """GEOAI_BASEMAP as "on", "off" or "auto" (unknown values mean "auto")."""
    value = (_env("GEOAI_BASEMAP") or "auto").lower()
    if value in _TRUE:
        return "on"
    if value in _FALSE:
        return "off"
    return "auto"


def saliency() -> str:
    """GEOAI_SALIENCY as one of SALIENCY_MODES; an unknown value is logged and means "auto".

    "auto" draws where the models looked after every round (loading them in the background when
    they answered from precomputed predictions); "on-request" waits for the person's click, so a
    hosted server keeps no model in memory until someone asks.
    """
    value = (_env("GEOAI_SALIENCY") or "auto").lower()
    if value not in SALIENCY_MODES:
        log.warning("GEOAI_SALIENCY=%r is not one of %s; drawing where the models looked after every round",
                    value, ", ".join(SALIENCY_MODES))
        return "auto"
    return value


def public_maps() -> tuple[str, ...] | None:
    """The maps a public deployment may serve (GEOAI_PUBLIC=1, list in GEOAI_PUBLIC_MAPS); None: all."""
    if _env("GEOAI_PUBLIC") != "1":
        return None
    listed = _env("GEOAI_PUBLIC_MAPS")
    return tuple(listed.split()) if listed else PUBLIC_MAPS_DEFAULT


def precision() -> str:
    """GEOAI_PRECISION, lower-cased: "fp32" (default) or "reduced" (checked by the caller)."""
    return (_env("GEOAI_PRECISION") or "fp32").lower()


def force_fp32() -> bool:
    """GEOAI_FORCE_FP32=1 vetoes reduced precision whatever else asks for it."""
    return bool(_flag("GEOAI_FORCE_FP32"))


def compile_override() -> bool | None:
    """GEOAI_COMPILE: True/False forces torch.compile on/off; None leaves the choice automatic."""
    return _flag("GEOAI_COMPILE")


def threads() -> int | None:
    """GEOAI_THREADS: torch intra-op threads; None leaves the choice automatic."""
    value = _env("GEOAI_THREADS")
    if value is None:
        return None
    if not value.isdigit() or int(value) < 1:
        raise SettingError(f"GEOAI_THREADS must be a positive integer, got {value!r}")
    return int(value)


RUNTIMES = ("auto", "openvino", "onnxruntime", "torch")


def runtime() -> str:
    """GEOAI_RUNTIME, lower-cased: which engine runs the backbones on CPU (one of RUNTIMES).

    "auto" (default) picks OpenVINO, else ONNX Runtime, else PyTorch, whichever is installed;
    "torch" keeps PyTorch. An unknown value is logged and means "auto".
    """
    value = (_env("GEOAI_RUNTIME") or "auto").lower()
    if value not in RUNTIMES:
        log.warning("GEOAI_RUNTIME=%r is not one of %s; choosing automatically", value, ", ".join(RUNTIMES))
        return "auto"
    return value


def log_script_runs() -> bool:
    """GEOAI_LOG_SCRIPT_RUNS=1 logs every run of the game's page script (the browser tests count them)."""
    return _env("GEOAI_LOG_SCRIPT_RUNS") == "1"


def postgres_test_url() -> str | None:
    """GEOAI_TEST_POSTGRES_URL: a PostgreSQL server the tests and benchmarks may create databases on."""
    return _env("GEOAI_TEST_POSTGRES_URL")
