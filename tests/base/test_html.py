"""The HTML helper shared by the report and the widgets: escaping, empty cells, row classes and
cell colours, read back with the standard HTML parser."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dfs_analytics import _html


class _Cells(HTMLParser):
    """The table's header and body cells as text, and each element's attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.head: list[str] = []
        self.rows: list[list[str]] = []
        self.tags: list[tuple[str, dict[str, Any]]] = []
        self._cell: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "tr" and self.head:
            self.rows.append([])
        if tag in ("th", "td"):
            self._cell = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "th":
            self.head.append(self._cell or "")
        elif tag == "td":
            self.rows[-1].append(self._cell or "")
        self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell += data


def cells(markup: str) -> _Cells:
    parser = _Cells()
    parser.feed(markup)
    parser.close()
    return parser


HOSTILE = "<script>alert('x')</script> & \"quoted\""


def test_text_from_data_is_escaped_everywhere() -> None:
    frame = pd.DataFrame({HOSTILE: [HOSTILE], "n": [1]})
    markup = _html.table(frame, css_class='x" onclick="y', row_classes=['z"><b'])
    assert "<script" not in markup
    doc = cells(markup)
    # attribute values stay inside their quotes: no attribute or element of their own
    tags = ["table", "thead", "tr", "th", "th", "tbody", "tr", "td", "td"]
    assert [tag for tag, _ in doc.tags] == tags
    assert doc.tags[0][1] == {"class": 'x" onclick="y'}
    assert doc.tags[6][1] == {"class": 'z"><b'}
    assert doc.head == [HOSTILE, "n"]
    assert doc.rows == [[HOSTILE, "1"]]
    assert _html.escape(HOSTILE) == (
        "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;quoted&quot;"
    )


@pytest.mark.parametrize("missing", [None, float("nan"), np.nan, pd.NA, pd.NaT], ids=repr)
def test_a_missing_value_is_an_empty_cell(missing: Any) -> None:
    frame = pd.DataFrame({"a": pd.Series([missing, "x"], dtype=object)})
    assert cells(_html.table(frame)).rows == [[""], ["x"]]
    assert _html.cell_text(missing) == ""


def test_values_keep_their_column_type() -> None:
    # one row of an int and a float column: the int is not shown as a float
    frame = pd.DataFrame({"tasks": [3], "rate": [0.25], "ok": [True], "name": ["a"]})
    assert cells(_html.table(frame)).rows == [["3", "0.25", "True", "a"]]


def test_row_classes_and_table_class() -> None:
    frame = pd.DataFrame({"a": [1, 2, 3]})
    doc = cells(_html.table(frame, css_class="dfs-t", row_classes=[None, "flag", None]))
    assert ("table", {"class": "dfs-t"}) in doc.tags
    rows = [attrs for tag, attrs in doc.tags if tag == "tr"][1:]  # after the header row
    assert rows == [{}, {"class": "flag"}, {}]


@pytest.mark.parametrize(
    ("color", "style"),
    [
        ("#26e4bc", "background:#26e4bc33;border-left:4px solid #26e4bc"),
        ("#abc", "border-left:4px solid #abc"),
        ("green", "border-left:4px solid green"),
        ("red;background:url(http://x)", None),
        ('#fff" onmouseover="x', None),
        ("", None),
        (None, None),
        (float("nan"), None),
    ],
)
def test_cell_colours_are_plain_css_colours_only(color: Any, style: str | None) -> None:
    assert _html.color_style(color) == style
    frame = pd.DataFrame({"name": ["a"], "message": ["OK"]})
    doc = cells(_html.table(frame, cell_colors={"message": [color]}))
    styles = [attrs.get("style") for tag, attrs in doc.tags if tag == "td"]
    assert styles == [None, style]


def test_an_empty_frame_is_a_table_with_its_header() -> None:
    doc = cells(_html.table(pd.DataFrame(columns=["a", "b"])))
    assert doc.head == ["a", "b"] and doc.rows == []
