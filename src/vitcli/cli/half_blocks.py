"""Pictures as text, for a terminal preview."""

from __future__ import annotations

from rich.text import Text


def half_blocks(rgb) -> Text:
    """An (H, W, 3) uint8 picture as text: each character is two pixels, the upper one as the colour of
    '▀' and the lower one as its background, so a 28x28 digit takes 28 columns and 14 lines."""
    from rich.color import Color
    from rich.style import Style

    text = Text()
    height = rgb.shape[0]
    for y in range(0, height, 2):
        for x in range(rgb.shape[1]):
            top = Color.from_rgb(*(int(v) for v in rgb[y, x]))
            bottom = Color.from_rgb(*(int(v) for v in rgb[y + 1, x])) if y + 1 < height else None
            text.append("▀", Style(color=top, bgcolor=bottom))
        if y + 2 < height:
            text.append("\n")
    return text
