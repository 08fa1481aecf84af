"""Image sizes as `WIDTHxHEIGHT` text: the one spelling every stage reads and writes."""

from __future__ import annotations

import re

_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_size(text: str | tuple[int, int] | list[int]) -> tuple[int, int]:
    """Parse `WIDTHxHEIGHT` (e.g. `512x256`) into `(width, height)`."""
    if isinstance(text, tuple | list):
        width, height = (int(v) for v in text)
        return width, height
    match = _SIZE.match(str(text))
    if not match:
        raise ValueError(f"size {text!r} is not WIDTHxHEIGHT, e.g. 512x256")
    width, height = int(match.group(1)), int(match.group(2))
    if width <= 0 or height <= 0:
        raise ValueError(f"size {text!r} must be positive")
    return width, height


def format_size(size: tuple[int, int]) -> str:
    """`(width, height)` -> `WIDTHxHEIGHT`."""
    return f"{size[0]}x{size[1]}"
