"""The project's one progress bar: tqdm on stderr, redrawn at most once a second."""
from __future__ import annotations

import sys


def progress_bar(total, desc: str, unit: str, enabled: bool = True, initial: int = 0):
    """A tqdm bar (a context manager); ``enabled=False`` gives one that draws nothing."""
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled,
                file=sys.stderr, mininterval=1.0, dynamic_ncols=True)
