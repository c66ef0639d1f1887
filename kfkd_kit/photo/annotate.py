"""Photos with their faces drawn (`kfkd predict --annotated`): each face's box and its 15
keypoints, from the rows photo/align.py's ``predict_photos`` gives."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..keypoints import FEATURE_NAMES, LEGACY_PIXEL_ORIGIN
from . import framing
from .align import BOX_COLUMNS

__all__ = ["annotate", "write_annotated"]

COLOURS = ((255, 64, 64), (64, 200, 255), (255, 210, 0), (120, 255, 120), (255, 120, 255))


def annotate(photo, rows, origin=LEGACY_PIXEL_ORIGIN):
    """A copy of the photo (Pillow RGB image) with each face's box and 15 points drawn; the
    rows' coordinates in pixel origin ``origin`` (the backend's, keypoints.py)."""
    from PIL import Image, ImageDraw
    image = Image.fromarray(photo.rgb)
    draw = ImageDraw.Draw(image)
    width = max(2, round(max(image.size) / 300))
    for row in rows:
        colour = COLOURS[row["face"] % len(COLOURS)]
        x, y, w, h = (row[k] for k in BOX_COLUMNS)
        # the rows put pixel centres at index + origin; Pillow's at index (+ 0.5 edges)
        x, y = x - origin, y - origin
        draw.rectangle([x, y, x + w, y + h], outline=colour, width=width)
        radius = max(2.0, w / 45)
        points = framing.points(np.array([row[f] for f in FEATURE_NAMES], dtype=float))
        for px, py in points:
            px, py = px - origin, py - origin
            draw.ellipse([px - radius, py - radius, px + radius, py + radius],
                         fill=colour, outline=(0, 0, 0))
    return image


def unique_name(stem, suffix, taken) -> str:
    """``stem + suffix``, or with -2, -3, ... before the suffix where ``taken`` has it;
    added to ``taken``."""
    name, number = f"{stem}{suffix}", 1
    while name in taken:
        number += 1
        name = f"{stem}-{number}{suffix}"
    taken.add(name)
    return name


def write_annotated(paths, rows, folder, warn=None, origin=LEGACY_PIXEL_ORIGIN) -> list[Path]:
    """Each readable photo of ``paths`` with its faces drawn, as ``folder/<name>.jpg``
    (``-2``, ``-3``, ... for photos of the same name), written atomically; ``origin`` as
    ``annotate``'s."""
    import io
    from ..utils.atomic import atomic_write
    from .photos import PhotoError, read_photo
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    by_photo = {}
    for row in rows:
        by_photo.setdefault(row["image"], []).append(row)
    written, taken = [], set()
    for path in dict.fromkeys(paths):
        try:
            photo = read_photo(path)
        except PhotoError:
            continue                       # already reported by predict_photos
        name = unique_name(Path(path).stem, ".jpg", taken)
        buffer = io.BytesIO()
        annotate(photo, by_photo.get(str(path), []), origin).save(buffer, format="JPEG", quality=90)
        with atomic_write(folder / name, "wb") as f:
            f.write(buffer.getvalue())
        written.append(folder / name)
    return written
