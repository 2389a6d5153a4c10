"""Opening and checking image files, with one clear `ImageError` per failure mode.

The pixel limit is checked from the header (before any pixel is decoded) so that a
decompression bomb, a small file claiming billions of pixels, costs nothing to reject.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from geoai.data.errors import ImageError

DEFAULT_MAX_PIXELS = 50_000_000
BACKGROUND = (128, 128, 128)  # what transparent pixels become: mid-grey, neither black nor white
ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
HIGH_DEPTH_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
CONVERTIBLE_MODES = {"1", "L", "P", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"}
KNOWN_MODES = {"RGB"} | ALPHA_MODES | HIGH_DEPTH_MODES | CONVERTIBLE_MODES

CheckLevel = Literal["none", "header", "full"]


def open_image(path: str | Path | BinaryIO, *, max_pixels: int = DEFAULT_MAX_PIXELS,
               label: str | None = None) -> Image.Image:
    """Open an image fully decoded as RGB, upright per its EXIF orientation.

    `path` may also be an open binary file (e.g. a zip member); `label` then names it
    in error messages. Every mode becomes RGB as `to_rgb` says, or is refused. Raises
    ImageError (kind "missing_file", "not_an_image", "unreadable_image", "truncated_image",
    "image_too_large" or "unsupported_mode") with a clear message.
    """
    image = _open_checked(path, max_pixels=max_pixels, decode=True, label=label)
    name = label or (str(path) if isinstance(path, (str, Path)) else "<image>")
    try:
        image = ImageOps.exif_transpose(image)  # phone photos store rotation in EXIF
        return to_rgb(image, label=name)
    except (OSError, ValueError, SyntaxError) as exc:
        if isinstance(exc, ImageError):
            raise
        raise ImageError(f"cannot be decoded ({exc})", kind="unreadable_image", path=name) from exc


def to_rgb(image: Image.Image, *, label: str = "<image>") -> Image.Image:
    """The picture as 8-bit RGB, faithful to what a viewer shows, or ImageError.

    - transparency (RGBA, LA, PA, premultiplied modes, a palette or colour key with a
      transparent entry) is composited onto BACKGROUND, mid-grey, so transparent areas
      become neither black nor white;
    - 16- and 32-bit integer greyscale (I;16*, I) is read as 16-bit, 0-65535 -> 0-255,
      and refused with values outside that range; 32-bit float greyscale (F) must hold
      0-1 (-> 0-255), else it is refused: no guessing a range that would clip to white;
    - every other mode Pillow converts (1, L, P, CMYK, YCbCr, LAB, HSV, RGBX) is converted
      by Pillow; anything else is refused ("unsupported_mode").
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in HIGH_DEPTH_MODES:
        return _high_depth_to_grey(image, label).convert("RGB")
    if mode in ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode not in CONVERTIBLE_MODES:
        raise _unsupported_mode(mode, label)
    return image.convert("RGB")


def _unsupported_mode(mode: str, label: str) -> ImageError:
    return ImageError(f"has pixel mode {mode!r}, which geoai cannot convert to RGB; save it as "
                      "an ordinary 8-bit RGB or greyscale JPEG/PNG", kind="unsupported_mode",
                      path=label)


def _high_depth_to_grey(image: Image.Image, label: str) -> Image.Image:
    pixels = np.asarray(image)
    if image.mode == "F":
        if not np.isfinite(pixels).all() or pixels.min() < 0.0 or pixels.max() > 1.0:
            raise ImageError("has floating-point pixels outside 0-1 (or NaN/inf); geoai cannot "
                             "tell how bright they are; save it as an 8-bit RGB image",
                             kind="unsupported_mode", path=label)
        return Image.fromarray(np.rint(pixels * 255.0).astype(np.uint8), "L")
    if pixels.size and (pixels.min() < 0 or pixels.max() > 65535):
        raise ImageError(f"has {image.mode} pixels outside 0-65535; save it as an 8-bit RGB image",
                         kind="unsupported_mode", path=label)
    return Image.fromarray(np.rint(pixels.astype(np.float64) / 257.0).astype(np.uint8), "L")


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
    name = label or (str(path) if isinstance(path, (str, Path)) else "<image>")
    try:
        if level == "full":
            to_rgb(image, label=name)  # a mode refused here would fail the game too
        elif image.mode not in KNOWN_MODES:
            raise _unsupported_mode(image.mode, name)
    finally:
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
