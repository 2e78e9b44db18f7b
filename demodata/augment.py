"""Render one katakana from a font and make it look drawn by hand, as a 28x28 uint8 image.

Each glyph is rendered once, large, and cached. Every sample then goes through, in order:
a random affine map (rotation, shear, anisotropic scale, translation) combined with a smooth
elastic displacement field, sampled in one bilinear pass at 4x the output size; a stroke
width change (dilation or erosion) towards a random pen width, so bold and hairline fonts
meet in the middle as pens do; an area downsample to 28x28; a slight blur; ink darkness and
noise confined to the strokes. The paper stays white (255), as in the course data, which
also keeps the committed file small.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from demodata.fonts import Writer

SIDE = 28
# Work at 4x so that dilation/erosion steps and the elastic field are finer than a pixel.
_UP = 4
_WORK = SIDE * _UP
_RENDER_PX = 160


@lru_cache(maxsize=512)
def render_glyph(writer: Writer, char: str) -> np.ndarray:
    """Ink coverage (float32, 0..1, ink = 1) of ``char`` in ``writer``'s font, tightly cropped."""
    font = ImageFont.truetype(writer.path, _RENDER_PX, index=writer.index)
    canvas = Image.new("L", (_RENDER_PX * 2, _RENDER_PX * 2), 0)
    ImageDraw.Draw(canvas).text((_RENDER_PX, _RENDER_PX), char, fill=255, font=font, anchor="mm")
    box = canvas.getbbox()
    if box is None:
        raise ValueError(f"font {writer.path} has no glyph for {char!r}")
    # A margin of zeros lets bilinear sampling fade to paper at the glyph's edge.
    left, top, right, bottom = box
    crop = canvas.crop((left - 2, top - 2, right + 2, bottom + 2))
    return np.asarray(crop, dtype=np.float32) / 255.0


def _stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in pixels: area / half the boundary length of the binarised ink."""
    mask = ink > 0.5
    area = int(mask.sum())
    if area == 0:
        return 0.0
    padded = np.pad(mask, 1)
    interior = (
        padded[1:-1, 1:-1]
        & padded[:-2, 1:-1]
        & padded[2:, 1:-1]
        & padded[1:-1, :-2]
        & padded[1:-1, 2:]
    )
    boundary = max(int((mask & ~interior).sum()), 1)
    return 2.0 * area / boundary


def _bilinear(src: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Sample ``src`` at float coordinates; outside the image is paper (0)."""
    h, w = src.shape
    padded = np.pad(src, 1)
    ys = np.clip(ys + 1.0, 0.0, h + 1.0 - 1e-4)
    xs = np.clip(xs + 1.0, 0.0, w + 1.0 - 1e-4)
    y0 = np.floor(ys).astype(np.intp)
    x0 = np.floor(xs).astype(np.intp)
    fy = ys - y0
    fx = xs - x0
    y1 = np.minimum(y0 + 1, h + 1)
    x1 = np.minimum(x0 + 1, w + 1)
    top = padded[y0, x0] * (1 - fx) + padded[y0, x1] * fx
    bottom = padded[y1, x0] * (1 - fx) + padded[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def _elastic_field(rng: np.random.Generator, strength: float) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random displacement (dy, dx) over the work grid, in work pixels."""
    grid = 4
    fields = []
    for _ in range(2):
        coarse = rng.normal(0.0, strength, size=(grid, grid)).astype(np.float32)
        img = Image.fromarray(coarse, mode="F").resize((_WORK, _WORK), Image.Resampling.BICUBIC)
        fields.append(np.asarray(img, dtype=np.float32))
    return fields[0], fields[1]


def _warp(glyph: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Place the glyph on the work canvas through a random affine + elastic map."""
    gh, gw = glyph.shape
    # Size of the glyph's longer side on the 28 px grid; the course's characters fill
    # most of the frame but not all of it.
    target = rng.uniform(17.0, 23.0) * _UP
    base = target / max(gh, gw)
    sx = base * rng.uniform(0.85, 1.12)
    sy = base * rng.uniform(0.85, 1.12)
    angle = np.deg2rad(rng.normal(0.0, 6.0))
    shear = rng.normal(0.0, 0.12)
    cos, sin = np.cos(angle), np.sin(angle)
    # Forward map glyph -> canvas: rotation @ shear @ scale; we need its inverse.
    forward = np.array([[cos, -sin], [sin, cos]]) @ np.array([[1.0, shear], [0.0, 1.0]])
    forward = forward @ np.diag([sx, sy])
    inverse = np.linalg.inv(forward)
    centre = _WORK / 2 + np.clip(rng.normal(0.0, 1.0, size=2), -1.5, 1.5) * _UP
    dy, dx = _elastic_field(rng, strength=rng.uniform(0.0, 0.9) * _UP)
    yy, xx = np.mgrid[0:_WORK, 0:_WORK].astype(np.float32)
    px = xx + dx - centre[0]
    py = yy + dy - centre[1]
    src_x = inverse[0, 0] * px + inverse[0, 1] * py + gw / 2
    src_y = inverse[1, 0] * px + inverse[1, 1] * py + gh / 2
    # Shrinking a large render with point sampling aliases; pre-blur in proportion.
    shrink = 1.0 / max(min(sx, sy), 1e-3)
    if shrink > 1.5:
        smooth = Image.fromarray((glyph * 255).astype(np.uint8)).filter(
            ImageFilter.GaussianBlur(radius=0.5 * shrink)
        )
        glyph = np.asarray(smooth, dtype=np.float32) / 255.0
    return _bilinear(glyph, src_y, src_x)


def _repen(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Thicken or thin the strokes towards a random pen width (in work pixels)."""
    width = _stroke_width(ink)
    target = rng.uniform(1.2, 2.6) * _UP
    img = Image.fromarray((np.clip(ink, 0, 1) * 255).astype(np.uint8))
    delta = target - width
    if delta >= 2.0:
        # MaxFilter of size k widens a stroke by k - 1 pixels.
        size = min(2 * int(round(delta / 2)) + 1, 9)
        img = img.filter(ImageFilter.MaxFilter(size))
    elif delta <= -2.0 and width >= 2.5 * _UP:
        img = img.filter(ImageFilter.MinFilter(3))
    return np.asarray(img, dtype=np.float32) / 255.0


def draw_sample(writer: Writer, char: str, rng: np.random.Generator) -> np.ndarray:
    """One augmented 28x28 uint8 image of ``char``: white paper (255), dark strokes."""
    ink = _repen(_warp(render_glyph(writer, char), rng), rng)
    small = Image.fromarray((ink * 255).astype(np.uint8)).resize((SIDE, SIDE), Image.Resampling.BOX)
    radius = rng.uniform(0.0, 0.6)
    if radius > 0.2:
        small = small.filter(ImageFilter.GaussianBlur(radius=radius))
    coverage = np.asarray(small, dtype=np.float64) / 255.0
    # A hairline font shrunk to 28 px leaves no pixel fully covered; pens leave a full
    # stroke, so stretch the darkest pixel to full ink (like a scanner's auto-contrast).
    coverage /= max(float(coverage.max()), 1e-6)
    # Pens and scanners differ: the darkest ink ranges from black to dark grey.
    darkest = rng.uniform(0.0, 45.0)
    pixels = 255.0 - coverage * (255.0 - darkest)
    # Noise only where there is ink, so the paper stays 255 (as in the course data).
    noise = rng.normal(0.0, rng.uniform(0.0, 12.0), size=pixels.shape)
    pixels += noise * np.clip(coverage * 2.0, 0.0, 1.0)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
