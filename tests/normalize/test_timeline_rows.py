"""normalize.timeline_frame on events of every shape: the row order, the extra columns and
their precedence, as the frame has always read them."""

from __future__ import annotations

import collections

import pandas as pd

from dfs_analytics import normalize

FULL_STATE = {
    "task_id": "t1",
    "task_name": "n1",
    "analyzed_value": [1],
    "corrected_value": None,
    "message": "m",
    "is_conform": True,
}


def test_rows_and_extras() -> None:
    timelines = {
        "w1": [
            {
                "id": "e1",
                "states": [{"task_id": "t", "extra": 1}, None, 5],
                "x": 2,
                "state.extra": "from the event",
            },
            collections.OrderedDict(id="e2", date=1_700_000_000, states=None),
            {"id": "e3"},
        ],
        "w2": [],
        "w3": [
            {
                "id": "e4",
                "date": "2024-01-01T00:00:00Z",
                "type": "analysis",
                "user": None,
                "analysis_id": "a",
                "task_group_name": "g",
                "states": [FULL_STATE],
            }
        ],
    }
    frame = normalize.timeline_frame(timelines)
    assert frame["work_order_id"].tolist() == ["w1", "w1", "w1", "w1", "w1", "w3"]
    assert frame["event_id"].tolist() == ["e1", "e1", "e1", "e2", "e3", "e4"]
    assert frame["task_id"].tolist()[0] == "t"
    assert pd.isna(frame["task_id"].iloc[1]) and pd.isna(frame["task_id"].iloc[2])
    # a state's unknown key wins over an event key of the same column name, on its own row
    assert frame["state.extra"].tolist()[:3] == [1, "from the event", "from the event"]
    assert frame["x"].tolist()[:3] == [2, 2, 2] and frame["x"].isna().tolist()[3:] == [True] * 3
    assert frame["date"].iloc[3] == pd.Timestamp(1_700_000_000, unit="s", tz="UTC")
    last = frame.iloc[5]
    assert (last["task_name"], last["message"], bool(last["is_conform"])) == ("n1", "m", True)
    assert last["analyzed_value"] == [1]
    assert list(frame.columns) == [c.name for c in normalize.TIMELINE_SPEC] + ["state.extra", "x"]


def test_empty() -> None:
    frame = normalize.timeline_frame({})
    assert len(frame) == 0
    assert list(frame.columns) == [c.name for c in normalize.TIMELINE_SPEC]
