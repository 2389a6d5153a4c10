"""Opening and checking image files, with one clear `ImageError` per failure mode.

The pixel limit is checked from the header (before any pixel is decoded) so that a
decompression bomb, a small file claiming billions of pixels, costs nothing to reject.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import BinaryIO, Literal

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from geoai.data.errors import ImageError

DEFAULT_MAX_PIXELS = 50_000_000

CheckLevel = Literal["none", "header", "full"]


def open_image(path: str | Path | BinaryIO, *, max_pixels: int = DEFAULT_MAX_PIXELS,
               label: str | None = None) -> Image.Image:
    """Open an image fully decoded as RGB, upright per its EXIF orientation.

    `path` may also be an open binary file (e.g. a zip member); `label` then names it
    in error messages. Raises ImageError (kind "missing_file", "not_an_image",
    "unreadable_image", "truncated_image" or "image_too_large") with a clear message.
    """
    image = _open_checked(path, max_pixels=max_pixels, decode=True, label=label)
    try:
        image = ImageOps.exif_transpose(image)  # phone photos store rotation in EXIF
        return image if image.mode == "RGB" else image.convert("RGB")
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"cannot be decoded ({exc})", kind="unreadable_image",
                         path=label or path) from exc


def check_image(path: str | Path | BinaryIO, *, level: CheckLevel = "header",
                max_pixels: int = DEFAULT_MAX_PIXELS, label: str | None = None) -> None:
    """Raise ImageError if the file is not a usable image.

    level "header" reads only the header (format, size, pixel limit): fast, but misses
    truncation; "full" also decodes every pixel; "none" does nothing.
    """
    if level == "none":
        return
    if level not in ("header", "full"):
        raise ValueError(f"check level must be 'none', 'header' or 'full', not {level!r}")
    image = _open_checked(path, max_pixels=max_pixels, decode=level == "full", label=label)
    image.close()


def _open_checked(source: str | Path | BinaryIO, *, max_pixels: int, decode: bool,
                  label: str | None) -> Image.Image:
    name = label or (str(source) if isinstance(source, (str, Path)) else "<image>")
    if isinstance(source, (str, Path)):
        file_path = Path(source)
        if not file_path.exists():
            raise ImageError("file not found", kind="missing_file", path=name)
        if not file_path.is_file():
            raise ImageError("is not a file (a folder?)", kind="missing_file", path=name)
        if file_path.stat().st_size == 0:
            raise ImageError("is empty (0 bytes), not an image", kind="not_an_image", path=name)
        try:
            # Read into memory: the file is closed at once and PIL's lazy loading cannot
            # outlive it; the images here are small, bombs are caught from the header.
            data = file_path.read_bytes()
        except OSError as exc:
            raise ImageError(f"cannot be read ({exc.strerror or exc})", kind="unreadable_image",
                             path=name) from exc
        stream: BinaryIO = io.BytesIO(data)
    else:
        stream = source

    try:
        with warnings.catch_warnings():
            # PIL warns above its own global limit; we apply max_pixels ourselves below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(stream)
    except Image.DecompressionBombError as exc:
        raise ImageError(f"is too large to open safely ({exc})", kind="image_too_large",
                         path=name) from exc
    except UnidentifiedImageError as exc:
        raise ImageError("is not an image (unknown or damaged format)", kind="not_an_image",
                         path=name) from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise _read_failure(exc, name, "cannot be read as an image") from exc

    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise ImageError(
            f"is {width}x{height} = {width * height:,} pixels, more than the limit of "
            f"{max_pixels:,} (a decompression bomb or an unreasonably large photo)",
            kind="image_too_large", path=name)
    if width <= 0 or height <= 0:
        image.close()
        raise ImageError(f"has an invalid size {width}x{height}", kind="unreadable_image",
                         path=name)
    if decode:
        _decode(image, name)
    return image


def _decode(image: Image.Image, name: str) -> None:
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Someone relaxed PIL globally; a check must still see truncation.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set; image checks "
                           "would accept truncated files")
    try:
        image.load()
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise _read_failure(exc, name, "is corrupt and cannot be decoded") from exc


def _read_failure(exc: Exception, name: str, what: str) -> ImageError:
    """The ImageError for a PIL failure: "truncated_image" when PIL says the data ends
    early (its message is the only signal), else "unreadable_image" saying `what`."""
    if "truncated" in str(exc).lower():
        return ImageError(f"is truncated ({exc}); the file was probably cut off while "
                          "copying or downloading", kind="truncated_image", path=name)
    return ImageError(f"{what} ({exc})", kind="unreadable_image", path=name)
