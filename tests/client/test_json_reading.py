"""The client's JSON reading: orjson where it gives what ``response.json()`` gives, the
standard reading (values and errors) everywhere else."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest
import requests

from dfs_analytics.client.answers import parse_json


def answer(body: bytes, content_type: str | None = "application/json") -> requests.Response:
    """A received answer with ``body``, as requests builds it."""
    response = requests.Response()
    response.status_code = 200
    response._content = body
    if content_type is not None:
        response.headers["Content-Type"] = content_type
        response.encoding = requests.utils.get_encoding_from_headers(response.headers)
    return response


def reading(body: bytes, content_type: str | None = "application/json") -> Any:
    """What ``response.json()`` gives (or the type of error it raises)."""
    try:
        return answer(body, content_type).json()
    except Exception as exc:
        return type(exc)


def ours(body: bytes, content_type: str | None = "application/json") -> Any:
    try:
        return parse_json(answer(body, content_type))
    except Exception as exc:
        return type(exc)


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types all the way down (1 and 1.0 differ; NaN equals NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and repr(a) == repr(b))
    return bool(a == b)


EDGE_BODIES = [
    b'{"a": 1, "a": 2}',  # duplicate keys: the last one
    b"[9223372036854775807, -9223372036854775808]",
    b"[9223372036854775808, 18446744073709551616, -9223372036854775809]",  # past 64 bits
    b'[123456789012345678901234567890, "x"]',
    b"[1.0000000000000002, 5e-324, 1e308, -0.0, 0.1, 1e2, 1E-7]",
    b"[1e400, -1e400]",  # infinities to json
    b"[NaN, Infinity, -Infinity]",
    b'["\\ud800", "\\udfff x"]',  # lone surrogates
    b'["\\ud83d\\ude00", "\\u00e9", "\\u0000"]',
    b'{"x": "\xc3\xa9\xe2\x82\xac"}',
    b'{"x": "\xff\xfe broken"}',  # invalid UTF-8: replaced by requests
    b"\xef\xbb\xbf[1]",  # a BOM
    b"[" * 2000 + b"]" * 2000,  # nested deeper than orjson reads
    b"  [1]  ",
    b"[1] trailing",
    b"",
    b"not json",
    b'{"count": 3, "next": null, "results": [{"id": "a", "states": []}]}',
]


@pytest.mark.parametrize("body", EDGE_BODIES, ids=range(len(EDGE_BODIES)))
@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", None, "text/plain; charset=latin-1"],
)
def test_the_same_values_or_errors_as_requests(body: bytes, content_type: str | None) -> None:
    expected = reading(body, content_type)
    got = ours(body, content_type)
    if isinstance(expected, type):
        assert got is expected
    else:
        assert same(got, expected)


def test_a_declared_latin1_body_is_read_as_latin1() -> None:
    body = '{"name": "é"}'.encode()
    assert ours(body, "application/json; charset=latin-1") == {"name": "Ã©"}


def random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.randint(-(2**70), 2**70) if rng.random() < 0.2 else rng.randint(-999, 10**9)
    if kind == 2:
        return rng.choice([rng.uniform(-1e9, 1e9), rng.random(), 10 ** rng.uniform(-300, 300)])
    if kind in (3, 4, 5):
        return "".join(rng.choice('ab é\u20ac\U0001f600"\\\n\t0123456789') for _ in range(8))
    if kind in (6, 7):
        return {random_json(rng, 9): random_json(rng, depth + 1) for _ in range(rng.randrange(4))}
    return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]


def test_random_documents_read_the_same() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        doc = random_json(rng)
        body = json.dumps(doc, ensure_ascii=rng.random() < 0.5).encode()
        assert same(ours(body), reading(body)), body
