"""HTML rendering shared by the audit report and the widgets: escaping, cell text and tables.

Text from data (names, values, paths, error messages) reaches a page only through
:func:`escape` or :func:`table`, so escaping is decided here, once. A missing value (None,
NaN, ``pd.NA``, ``NaT``) is an empty cell, never "nan" or "<NA>".

It only builds strings: it never reads data, never does I/O, never decides what a page shows
(formats, columns, wording belong to its callers), and imports nothing of the package but
:mod:`~dfs_analytics.rules`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence

import pandas as pd

from .rules import is_missing

# a colour we put in a style attribute: #rgb, #rrggbb (with alpha or not) or a CSS name
_COLOR = re.compile(r"#(?:[0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})|[a-zA-Z]{3,20}")
_RRGGBB = re.compile(r"#[0-9a-fA-F]{6}")


def escape(value: object) -> str:
    """``value`` as text safe inside an element or a quoted attribute (``&<>"'`` escaped)."""
    return html.escape(str(value), quote=True)


def cell_text(value: object) -> str:
    """The text a table cell shows for ``value``: empty when it is missing, else ``str``
    (not escaped: :func:`table` escapes it)."""
    return "" if is_missing(value) else str(value)


def color_style(color: object) -> str | None:
    """An inline style highlighting a cell in ``color`` (a left border, and a light
    background for ``#rrggbb``); None when ``color`` is missing or not a plain CSS colour,
    so nothing from data can write CSS of its own."""
    if not isinstance(color, str) or not _COLOR.fullmatch(color):
        return None
    if _RRGGBB.fullmatch(color):
        return f"background:{color}33;border-left:4px solid {color}"
    return f"border-left:4px solid {color}"


def table(
    frame: pd.DataFrame,
    *,
    css_class: str | None = None,
    row_classes: Sequence[str | None] | None = None,
    cell_colors: Mapping[str, Sequence[object]] | None = None,
) -> str:
    """A ``<table>`` of ``frame``: a header row of its column names, one row per row, every
    cell's text escaped (missing values empty, see :func:`cell_text`).

    ``css_class``: the table's class. ``row_classes``: a class per row (None for none), e.g.
    ``"flag"`` to highlight it. ``cell_colors``: per column name, a colour per row (see
    :func:`color_style`) for the cells of that column. Returns the HTML as a string.
    """
    head = "".join(f"<th>{escape(c)}</th>" for c in frame.columns)
    classes = list(row_classes) if row_classes is not None else [None] * len(frame)
    colors = {
        i: list(cell_colors[c])
        for i, c in enumerate(frame.columns)
        if cell_colors is not None and c in cell_colors
    }
    rows = []
    for r, values in enumerate(frame.itertuples(index=False, name=None)):
        cells = []
        for i, value in enumerate(values):
            style = color_style(colors[i][r]) if i in colors else None
            attr = f' style="{style}"' if style else ""
            cells.append(f"<td{attr}>{escape(cell_text(value))}</td>")
        row_class = classes[r]
        attr = f' class="{escape(row_class)}"' if row_class else ""
        rows.append(f"<tr{attr}>{''.join(cells)}</tr>")
    attr = f' class="{escape(css_class)}"' if css_class else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
