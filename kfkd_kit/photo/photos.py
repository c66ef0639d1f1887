"""Reading photos: JPEG, PNG (with alpha, 16-bit, palette), BMP, WebP, TIFF, grey or colour,
turned upright by their EXIF orientation, as grey levels for the nets and RGB for drawing.

Pillow only (no torch). A file that cannot be read is a ``PhotoError`` whose message is one
line naming it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

# ITU-R BT.601 luma, as Pillow's convert("L")
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# Transparent parts of a photo are shown, and read, as if laid on white.
BACKGROUND = 255


class PhotoError(ValueError):
    """A file that is not a readable image; the message is one line naming it."""


class PhotoTooLarge(PhotoError):
    """An image with more pixels than allowed (a decompression bomb, or just too big)."""


@dataclass
class Photo:
    """One photo as it is displayed (EXIF orientation applied): ``grey`` float32 (h, w) grey
    levels 0..255, ``rgb`` uint8 (h, w, 3) for detectors that want colour and for drawing."""
    path: str
    grey: np.ndarray
    rgb: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        return self.grey.shape[1], self.grey.shape[0]


def image_suffixes() -> set[str]:
    """File name endings Pillow reads (.jpg, .png, .webp, ...), lower case."""
    from PIL import Image
    return {suffix.lower() for suffix in Image.registered_extensions()}


def list_images(paths) -> list[str]:
    """The photos named on a command line: a file as given, a folder as the files directly
    in it whose ending Pillow knows (sorted by name; hidden files left out). A path that does
    not exist is a FileNotFoundError naming it."""
    suffixes = image_suffixes()
    found = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found += [str(path / p.name) for p in sorted(path.iterdir(), key=lambda p: p.name)
                      if p.is_file() and not p.name.startswith(".")
                      and p.suffix.lower() in suffixes]
        elif path.exists():
            found.append(str(given))
        else:
            raise FileNotFoundError(f"{given}: no such file or folder")
    return found


def read_photo(path) -> Photo:
    """The photo at ``path``, upright as displayed; PhotoError when it cannot be read."""
    size = Path(path).stat().st_size if Path(path).is_file() else None
    return _decode(path, str(path), size)


def decode_photo(data: bytes, name: str, max_pixels: int | None = None) -> Photo:
    """The photo encoded in ``data`` (an upload), read in memory, nothing written to disk;
    ``name`` names it in the Photo and in errors. With ``max_pixels``, an image whose header
    declares more pixels is a PhotoTooLarge before any of it is decoded (a decompression
    bomb: a few kilobytes that decode to gigabytes)."""
    import io
    return _decode(io.BytesIO(data), name, len(data), max_pixels)


def _decode(source, name, size, max_pixels=None) -> Photo:
    from PIL import Image, ImageOps, UnidentifiedImageError
    try:
        with Image.open(source) as image:
            width, height = image.size          # from the header; nothing decoded yet
            if max_pixels is not None and width * height > max_pixels:
                raise PhotoTooLarge(f"{name}: {width}x{height} pixels, more than the "
                                    f"{max_pixels:,} allowed")
            image.load()
            image = ImageOps.exif_transpose(image)
            grey, rgb = _arrays(image)
    except UnidentifiedImageError:
        why = "an empty file" if size == 0 else "not an image Pillow can read"
        raise PhotoError(f"{name}: {why}") from None
    except Image.DecompressionBombError as exc:
        raise PhotoTooLarge(f"{name}: too large to read safely ({exc})") from None
    except PhotoError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        hint = " (truncated?)" if "truncated" in text or isinstance(exc, EOFError) else ""
        raise PhotoError(f"{name}: cannot read the image{hint}: {text[:160]}") from None
    if grey.size == 0:
        raise PhotoError(f"{name}: the image has no pixels")
    return Photo(path=name, grey=grey, rgb=rgb)


def _arrays(image):
    """(grey float32 0..255, rgb uint8) of a loaded Pillow image of any mode."""
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float32)
        if mode.startswith("I;16") or (mode == "I" and values.max(initial=0) > 255):
            values = values / 257.0          # 16 bits -> 0..255
        elif mode == "F" and values.max(initial=0) <= 1.0:
            values = values * 255.0          # floats in 0..1
        grey = np.clip(values, 0, 255).astype(np.float32)
        rgb = np.repeat(np.round(grey).astype(np.uint8)[..., None], 3, axis=2)
        return grey, rgb
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    if has_alpha:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
        alpha = rgba[..., 3:] / 255.0
        colour = rgba[..., :3] * alpha + BACKGROUND * (1.0 - alpha)
    else:
        colour = np.asarray(image.convert("RGB"), dtype=np.float32)
    grey = colour @ LUMA
    return grey.astype(np.float32), np.clip(np.round(colour), 0, 255).astype(np.uint8)
