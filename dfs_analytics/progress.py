"""Progress bars: one rule for whether to show one, for every long operation.

A bar shows when the call's ``progress=`` says so, else when the client's ``progress``
setting does, and never when the environment sets ``TQDM_DISABLE``. Bars are tqdm's
(``tqdm.auto``: a widget in a notebook, text in a terminal), appear only after 0.3 s and
leave nothing behind. This module never prints anything else.
"""

from __future__ import annotations

import os
from typing import Any

from tqdm.auto import tqdm

_TRUE = ("1", "true", "yes", "on")


def wanted(progress: bool | None, default: bool) -> bool:
    """Whether to show a bar: ``progress`` when given, else ``default`` (the client's
    setting); False whenever ``TQDM_DISABLE`` is set to a true value."""
    if os.environ.get("TQDM_DISABLE", "").strip().lower() in _TRUE:
        return False
    return default if progress is None else bool(progress)


def progress_bar(
    progress: bool | None,
    default: bool,
    *,
    total: int | None,
    desc: str,
    unit: str,
    cls: type[tqdm] = tqdm,
    **kwargs: Any,
) -> tqdm:
    """A tqdm bar (of ``cls``) shown as :func:`wanted` decides; returns it (a context
    manager, whose ``update`` does nothing when hidden)."""
    return cls(
        total=total,
        desc=desc,
        unit=unit,
        disable=not wanted(progress, default),
        delay=0.3,
        leave=False,
        **kwargs,
    )
