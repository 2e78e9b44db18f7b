"""A contact sheet of the demo data: one row per class, its katakana first, then samples.

For eyeballing legibility and labels after a regeneration; it reads the committed data, so
only the row headers need a Japanese font (they fall back to the class id without one).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from demodata.store import CLASSES, N_CLASSES, load_compact

_HEADER_FONT = "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf"


def _header(class_id: int, side: int) -> Image.Image:
    cell = Image.new("L", (side, side), 200)
    draw = ImageDraw.Draw(cell)
    try:
        font: ImageFont.FreeTypeFont | ImageFont.ImageFont = ImageFont.truetype(
            _HEADER_FONT, int(side * 0.8)
        )
        text = CLASSES[class_id]
    except OSError:
        font, text = ImageFont.load_default(), str(class_id)
    draw.text((side // 2, side // 2), text, fill=0, font=font, anchor="mm")
    return cell


def contact_sheet(
    path: Path, split: str = "test", per_class: int = 12, scale: int = 3, seed: int = 0
) -> Path:
    """Write a PNG with ``per_class`` random samples of each class of ``split``."""
    images, classes = load_compact(split)
    rng = np.random.default_rng(seed)
    side = 28 * scale
    gap = 2
    sheet = Image.new("L", ((per_class + 1) * (side + gap), N_CLASSES * (side + gap)), 128)
    for c in range(N_CLASSES):
        rows = np.flatnonzero(classes == c)
        picks = rng.choice(rows, size=min(per_class, len(rows)), replace=False)
        y = c * (side + gap)
        sheet.paste(_header(c, side), (0, y))
        for j, row in enumerate(picks):
            tile = Image.fromarray(images[row]).resize((side, side), Image.Resampling.NEAREST)
            sheet.paste(tile, ((j + 1) * (side + gap), y))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
