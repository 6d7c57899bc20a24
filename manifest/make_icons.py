"""Draw the Teams app icons reproducibly: ``python manifest/make_icons.py`` writes
manifest/color.png (192x192, full colour) and manifest/outline.png (32x32, white on transparent).

The motif: three practitioners (agencies) gathered around a child. Shapes are drawn at 8x size on
a mask and scaled down with a Lanczos filter, so the same Pillow gives the same pixels every time.
"""
from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
ACCENT = (27, 94, 122)          # #1B5E7A, the manifest's accentColor
CHILD = (255, 200, 87)          # warm yellow for the child in the colour icon
SCALE = 8


def _people_mask(size: int, box: float, *, adults: bool = True, child: bool = True) -> Image.Image:
    """A mask (L) of the motif centred in ``size`` px, fitting a ``box`` px square."""
    big = size * SCALE
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)
    unit = box * SCALE / 24.0        # the motif is designed on a 24-unit grid
    ox = oy = (big - 24 * unit) / 2

    def circle(cx: float, cy: float, r: float, fill: int = 255) -> None:
        draw.ellipse([ox + (cx - r) * unit, oy + (cy - r) * unit, ox + (cx + r) * unit, oy + (cy + r) * unit],
                     fill=fill)

    def shoulders(cx: float, top: float, half_width: float, fill: int = 255) -> None:
        draw.pieslice([ox + (cx - half_width) * unit, oy + top * unit, ox + (cx + half_width) * unit,
                       oy + (top + 2 * half_width) * unit], 180, 360, fill=fill)

    for cx, cy in ((4.5, 9.0), (12.0, 5.5), (19.5, 9.0)) if adults else ():      # three adults
        circle(cx, cy, 2.6)
        shoulders(cx, cy + 3.3, 4.2)
    if child:
        circle(12.0, 16.2, 2.0)
        shoulders(12.0, 18.6, 3.2)
    return mask


def color_icon() -> Image.Image:
    size = 192

    def mask(**which: bool) -> Image.Image:
        return _people_mask(size, 124, **which).resize((size, size), Image.Resampling.LANCZOS)

    image = Image.new("RGB", (size, size), ACCENT)
    image.paste((255, 255, 255), (0, 0, size, size), mask(child=False))
    image.paste(CHILD, (0, 0, size, size), mask(adults=False))
    return image


def outline_icon() -> Image.Image:
    size = 32
    alpha = _people_mask(size, 30, child=True).resize((size, size), Image.Resampling.LANCZOS)
    image = Image.new("RGBA", (size, size), (255, 255, 255, 0))
    image.putalpha(alpha)
    return image


def write(directory: Path = HERE) -> list[Path]:
    paths = [directory / "color.png", directory / "outline.png"]
    color_icon().save(paths[0], optimize=False)
    outline_icon().save(paths[1], optimize=False)
    return paths


if __name__ == "__main__":
    for path in write(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
        print(path)
