"""`python -m train backbones` (what can be trained on here) and `convert-offline`."""
from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from geoai import settings
from geoai.models.backbones import backbone_status, known_backbones
from train.errors import TrainError

HUB_CONNECT_TIMEOUT_S = 3.0
# Converted name -> the converter in geoai.backbones.offline that builds it.
OFFLINE_BACKBONES = ("dinov2-small-imgfocus", "mobilenetv2-1.0-deepsort")


def backbone_table() -> str:
    """A plain-text table: name, family, available now, description, and where / why not."""
    rows = [("name", "family", "available", "description", "status")]
    for name, spec in known_backbones().items():
        available, why = backbone_status(spec)
        rows.append((name, spec.family, "yes" if available else "no", spec.description, why))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4] for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 6)
    return "\n".join(lines)


def _converted(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def convert_offline(out_dir: str | Path | None = None) -> list[tuple[str, Path, str]]:
    """Build the offline backbones into out_dir (default GEOAI_CHECKPOINTS); skip converted ones.

    Returns (name, folder, "converted" | "already converted") per backbone.
    """
    from geoai.backbones.offline import convert_dinov2_small, convert_mobilenetv2
    from geoai.backbones.offline.dinov2_onnx import Dinov2SourceError
    from geoai.backbones.offline.mobilenetv2_pt import MobileNetV2ConversionError

    converters = {"dinov2-small-imgfocus": convert_dinov2_small,
                  "mobilenetv2-1.0-deepsort": convert_mobilenetv2}
    root = Path(out_dir) if out_dir is not None else settings.checkpoints_dir()
    done = []
    for name in OFFLINE_BACKBONES:
        folder = root / name
        if _converted(folder):
            done.append((name, folder, "already converted"))
            continue
        # Missing package (FileNotFoundError), unusable source, unwritable folder: the
        # converters' messages say which package or file.
        try:
            converters[name](folder, overwrite=True)
        except (OSError, Dinov2SourceError, MobileNetV2ConversionError) as exc:
            raise TrainError(f"cannot convert {name} into {folder}: {exc}") from None
        done.append((name, folder, "converted"))
    return done


def hub_unreachable() -> str | None:
    """Why the Hugging Face hub cannot be reached now (None when it answers a TCP connection).

    Asked before a download: without it, an offline machine retries the hub for half a
    minute before failing. HF_ENDPOINT is read now, as huggingface_hub reads it at import.
    """
    from huggingface_hub import constants

    endpoint = os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
    parts = urlsplit(endpoint)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=HUB_CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        return f"the Hugging Face hub ({endpoint}) cannot be reached: {exc.strerror or exc}"
    return None
