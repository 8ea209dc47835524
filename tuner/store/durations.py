"""How progress lines write a span of time: seconds under 90 s, minutes under 90 min, hours above."""

from __future__ import annotations


def duration(seconds: float) -> str:
    """``seconds`` as ``"45 s"``, ``"12 min"`` or ``"3.4 h"``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
