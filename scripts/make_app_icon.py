"""Draws the addon's app icon, azure_ad_contacts/static/description/icon.png (Pillow).

The Azure AD pyramid of static/src/img/azure_ad.svg in white on an Azure-blue tile, with a
small contact badge: Entra ID users become contacts. Run: .venv-18.0/bin/python scripts/make_app_icon.py
"""

from pathlib import Path

from PIL import Image, ImageDraw

SIZE = 128
SCALE = 4  # drawn large, scaled down: smooth edges without anti-aliasing support in ImageDraw
OUT = Path(__file__).resolve().parent.parent / "azure_ad_contacts" / "static" / "description" / "icon.png"


def gradient_tile(size):
    top, bottom = (15, 108, 189), (60, 203, 244)  # the SVG's two blues
    tile = Image.new("RGBA", (size, size))
    pixels = tile.load()
    for y in range(size):
        for x in range(size):
            t = (x + y) / (2 * size - 2)
            pixels[x, y] = tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)) + (255,)
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, size - 1, size - 1), radius=size // 6, fill=255)
    tile.putalpha(mask)
    return tile


def main():
    big = SIZE * SCALE
    icon = gradient_tile(big)
    draw = ImageDraw.Draw(icon)

    def p(x, y):  # coordinates on an 18-unit grid, as in the SVG
        return (big * (0.12 + 0.76 * x / 18), big * (0.08 + 0.76 * y / 18))

    draw.polygon([p(9, 1.2), p(1.3, 10.4), p(9, 16.8)], fill=(255, 255, 255, 255))
    draw.polygon([p(9, 1.2), p(16.7, 10.4), p(9, 16.8)], fill=(214, 240, 252, 255))
    draw.polygon([p(9, 6.2), p(5, 11), p(9, 14.3)], fill=(15, 108, 189, 255))
    draw.polygon([p(9, 6.2), p(13, 11), p(9, 14.3)], fill=(15, 158, 213, 255))
    # The contact badge in the lower right corner.
    cx, cy, r = big * 0.78, big * 0.78, big * 0.17
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(255, 255, 255, 255))
    head = r * 0.36
    blue = (15, 108, 189, 255)
    draw.ellipse((cx - head, cy - r * 0.62, cx + head, cy - r * 0.62 + 2 * head), fill=blue)
    draw.pieslice((cx - r * 0.62, cy + r * 0.08, cx + r * 0.62, cy + r * 1.2), 180, 360, fill=blue)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    icon.resize((SIZE, SIZE), Image.LANCZOS).save(OUT, optimize=True)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
