"""The simulator's runtime settings: what ``PATCH /_sim/config`` and ``Simulator(...)`` change.

:class:`RuntimeConfig` holds the knobs that may change while the server runs (keys, latency,
faults, throttling, validators, link scheme) and :func:`check_setting` is the one check of
each value. This module never touches the store, the network or the request cycle: it only
says what a setting is and whether a value fits it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..rules import is_number

NEXT_SCHEMES = ("http", "https")
_RATES = ("fault_rate", "throttle_rate", "slow_body_rate")
_AT_LEAST_ONE = {
    "throttle_burst_len": "Expected a whole number of requests, at least 1.",
    "throttle_burst": "Expected a whole number of tokens, at least 1, or null (one second's "
    "worth of throttle_rps).",
}


@dataclass
class RuntimeConfig:
    """Knobs that can change while the server runs (``PATCH /_sim/config``).

    ``validators=False`` and ``next_scheme="http"`` make the simulator answer like a plain
    Django REST Framework server (see :mod:`dfs_analytics.simulator.app`). Every value is
    checked by :func:`check_setting`; a bad one raises ValueError naming the setting.
    """

    api_keys: list[str] = field(default_factory=lambda: ["demo-key"])
    auth_status: int = 401
    latency: float = 0.0  # seconds added to every API request
    jitter: float = 0.0  # plus a uniform random 0..jitter seconds
    fault_rate: float = 0.0  # share of API requests that fail (5xx or dropped connection)
    throttle_rate: float = 0.0  # share of API requests answered 429
    throttle_burst_len: int = 1  # those 429s come in runs of this many requests (1: apart)
    throttle_rps: float = 0.0  # token-bucket limit in requests per second (0: none)
    throttle_burst: int | None = None  # tokens the bucket holds (None: max(1, throttle_rps))
    retry_after: int = 1  # Retry-After seconds sent with a 429
    slow_body_rate: float = 0.0  # share of API answers whose body drips (headers at once)
    slow_body_bps: float = 1024.0  # bytes per second such a body is sent at (more than 0)
    callback_delay: float = 0.05  # seconds before an analysis callback is processed
    fault_seed: int | None = None
    validators: bool = True  # ETag on GET answers and 304 on a matching If-None-Match
    next_scheme: str | None = None  # scheme of next/previous links (None: the request's)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            try:
                setattr(self, f.name, check_setting(f.name, value))
            except ValueError as exc:
                raise ValueError(f"{f.name}={value!r}: {exc}") from None

    def bucket_size(self) -> float:
        """The tokens the throttling bucket holds: ``throttle_burst``, else one second's worth
        of ``throttle_rps`` (at least one)."""
        if self.throttle_burst is not None:
            return float(self.throttle_burst)
        return max(1.0, self.throttle_rps)

    def public(self) -> dict[str, Any]:
        """The settings as ``GET /_sim/config`` shows them: keys masked to two characters."""
        data = asdict(self)
        data["api_keys"] = [k[:2] + "***" for k in self.api_keys]
        return data


def check_setting(name: str, value: Any) -> Any:
    """``value`` as runtime setting ``name`` stores it; ValueError says what is expected.

    Numbers keep their kind by setting, not by the value they replace: ``fault_rate`` is
    always a float (``0`` then ``0.1`` stays ``0.1``), ``retry_after``, ``auth_status``,
    ``throttle_burst_len`` and ``throttle_burst`` are integers (the last two at least 1;
    ``throttle_burst`` may be None: one second's worth). Rates are shares between 0 and 1;
    ``slow_body_bps`` is above 0.
    """
    if name == "api_keys":
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(k, str) and k and not any(c.isspace() for c in k) for k in value)
        ):
            raise ValueError(
                "Expected a non-empty list of keys (strings without spaces); an empty list "
                "would lock every client out."
            )
        return list(value)
    if name == "auth_status":
        if isinstance(value, bool) or value not in (401, 403):
            raise ValueError("Expected 401 or 403.")
        return int(value)
    if name == "validators":
        if not isinstance(value, bool):
            raise ValueError("Expected true or false.")
        return value
    if name == "next_scheme":
        if value is not None and value not in NEXT_SCHEMES:
            raise ValueError("Expected 'http', 'https' or null (the scheme of the request).")
        return value
    if name == "fault_seed":
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ValueError("Expected an integer or null.")
        return value
    if name == "throttle_burst" and value is None:
        return None
    if name not in RuntimeConfig.__dataclass_fields__:
        raise ValueError(f"Unknown setting {name!r}.")
    if not is_number(value) or not math.isfinite(value) or value < 0:
        raise ValueError("Expected a non-negative number.")
    if name == "retry_after":
        if value != int(value):
            raise ValueError("Expected a whole number of seconds.")
        return int(value)
    if name in _AT_LEAST_ONE:
        if value != int(value) or value < 1:
            raise ValueError(_AT_LEAST_ONE[name])
        return int(value)
    if name in _RATES and value > 1:
        raise ValueError("Expected a share between 0 and 1.")
    if name == "slow_body_bps" and value == 0:
        raise ValueError("Expected a number of bytes per second above 0.")
    return float(value)
