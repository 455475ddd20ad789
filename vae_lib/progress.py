"""The project's one progress bar (tqdm on stderr, redrawn at most once a second), and how it
writes a duration."""
from __future__ import annotations

import sys


def progress_bar(total, desc: str, unit: str, enabled: bool = True, initial: int = 0, **options):
    """A tqdm bar (a context manager); ``enabled=False`` gives one that draws nothing; ``options``
    go to tqdm (e.g. ``bar_format``, ``leave``, ``file``: default stderr)."""
    from tqdm import tqdm

    options.setdefault("file", sys.stderr)
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled,
                mininterval=1.0, dynamic_ncols=True, **options)


def duration(seconds: float) -> str:
    """Minutes below an hour, else hours: '25 min', '11.0 h'."""
    return f"{seconds / 60:.0f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"
