"""What the generator makes: :class:`SeedSettings` (from ``data/seed.json`` and overrides), the
engineers' profiles they draw, and :data:`DEFAULT_WORK_ORDERS`.

Settings only: this module never generates work orders (:mod:`.generator` does) and never
draws from anything but a random stream seeded by the settings.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

from .apps import data_dir

UTC = timezone.utc

DEFAULT_SELECTION_STRENGTH = 10.0
"""``selective_review=True``: the log-odds of a review rise by this much from a work order the
AI finds all conform to one it finds all not conform."""

DEFAULT_ERROR_SPREAD = 1.0
"""``clustered_errors=True``: the spread (coefficient of variation) of the work orders' AI error
factor, so poor photos have 3 times the AI errors and good ones half."""

POOR_PHOTO_SHARE = 0.2
"""With clustered errors, the share of work orders whose photos are poor."""

MAX_ERROR_SPREAD = ((1 - POOR_PHOTO_SHARE) / POOR_PHOTO_SHARE) ** 0.5
"""The largest spread: good photos' error factor reaches 0 there."""

DEFAULT_WORK_ORDERS = 2000
"""How many work orders are generated unless told otherwise, by every entry point:
``Simulator()``, ``SimulatorProcess()``, ``SeedSettings.defaults()`` (``data/seed.json`` says
the same), ``dfs-analytics simulate | demo | report | export`` and ``dfs_simulator_factory()``.
One seed therefore gives the same data whichever way the simulator is started."""

DEFAULT_REVIEWER = "reviewer@example.com"
"""Who reviews when the settings name no reviewer (generated reviews, ``POST /_sim/review``)."""


@dataclass
class Engineer:
    name: str | None
    weight: float
    photo_quality: float
    retake: float
    skip_group: float
    hours: tuple[float, float]
    ai_error_factor: float = 1.0

    @property
    def email(self) -> str | None:
        if self.name is None:
            return None
        return self.name.lower().replace(" ", ".") + "@example.com"


def as_utc_date(value: str | datetime) -> datetime:
    """A settings date (ISO-8601 text or datetime) as an aware UTC datetime (naive: UTC)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    d = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def _knob(name: str, value: Any, default: float, top: float) -> float:
    """A mode setting as a number: ``False``/``None`` is 0 (off), ``True`` is ``default``."""
    if value is None or value is False:
        return 0.0
    if value is True:
        return default
    if not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= top:
        bound = "" if math.isinf(top) else f" and at most {top:.3g}"
        raise ValueError(
            f"{name} must be true, false or a finite number at least 0{bound}, got {value!r}"
        )
    return float(value)


@dataclass
class SeedSettings:
    """What to generate. Defaults come from ``data/seed.json``; any field can be overridden.

    Two modes are off by default (and then change nothing in the data of a seed):

    - ``selective_review``: the AI's verdicts steer who gets reviewed. The log-odds of a
      work order's review are ``a + selective_review * s``, where ``s`` is the share of its
      analysed conformity tasks the AI finds not conform and ``a`` is set so that
      ``review_rate`` of the work orders are still reviewed on average. ``True`` means
      :data:`DEFAULT_SELECTION_STRENGTH`; 0 (default): reviews are random.
    - ``clustered_errors``: each work order's photos are good or poor
      (:data:`POOR_PHOTO_SHARE` are poor), and the AI's error rate on its job tasks is
      multiplied by a factor of mean 1 and this spread (poor photos ``1 + 2 * spread``, good
      ones ``1 - spread / 2``), so its errors on one work order come together while each
      task's error rate, and the truth's probabilities, stay as they were (up to rates
      clipped at 1). ``True`` means :data:`DEFAULT_ERROR_SPREAD`; at most
      :data:`MAX_ERROR_SPREAD`.
    """

    app: str = "fiber-connection"
    work_orders: int = DEFAULT_WORK_ORDERS
    seed: int = 0
    start: str = "2026-01-05T00:00:00Z"
    end: str = "2026-10-31T00:00:00Z"
    upgrade_at: float = 0.6
    review_rate: float = 0.6
    reviewer_fixes_ai_error: float = 0.85
    reviewer_overrides_right_verdict: float = 0.01
    reviewer_confirms_right_verdict: float = 0.02
    drift: float = 1.0
    max_attempts: int = 3
    metadata_update_rate: float = 0.1
    photo_effect: float = 0.5
    engineer_spread: float = 0.25
    extra_engineers: int = 0
    engineers: list[dict[str, Any]] = field(default_factory=list)
    reviewers: list[str] = field(default_factory=list)
    tags: list[list[Any]] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    selective_review: float = 0.0
    clustered_errors: float = 0.0

    def __post_init__(self) -> None:
        self.selective_review = _knob(
            "selective_review", self.selective_review, DEFAULT_SELECTION_STRENGTH, math.inf
        )
        self.clustered_errors = _knob(
            "clustered_errors", self.clustered_errors, DEFAULT_ERROR_SPREAD, MAX_ERROR_SPREAD
        )

    @classmethod
    def defaults(cls, **overrides: Any) -> SeedSettings:
        """Settings from ``data/seed.json`` with ``overrides`` applied (unknown names raise)."""
        spec = json.loads((data_dir() / "seed.json").read_text())
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown seed settings: {', '.join(sorted(unknown))}")
        spec.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**{k: v for k, v in spec.items() if k in known})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def engineer_profiles(self) -> list[Engineer]:
        """The engineers with their habits and AI error factors, drawn from a random stream
        of their own (seeded by ``seed``), so the same settings give the same engineers."""
        rng = random.Random(f"{self.seed}/engineers")
        specs = list(self.engineers) or [
            {"name": "Field Technician", "weight": 1, "photo_quality": 0.9, "retake": 0.8}
        ]
        for i in range(self.extra_engineers):
            specs.append(
                {
                    "name": f"Technician {i + 1:03d}",
                    "weight": round(rng.uniform(0.3, 2.0), 3),
                    "photo_quality": round(rng.uniform(0.7, 0.98), 3),
                    "retake": round(rng.uniform(0.4, 0.95), 3),
                    "skip_group": round(rng.uniform(0.0, 0.06), 3),
                    "hours": [7, 18],
                }
            )
        engineers = []
        for e in specs:
            quality = float(e.get("photo_quality", 0.9))
            jitter = math.exp(rng.gauss(0.0, 1.0) * self.engineer_spread)
            factor = e.get("ai_error_factor")
            if factor is None:
                factor = (max(1 - quality, 1e-3) / 0.1) ** self.photo_effect * jitter
            engineers.append(
                Engineer(
                    name=e.get("name"),
                    weight=float(e.get("weight", 1)),
                    photo_quality=quality,
                    retake=float(e.get("retake", 0.8)),
                    skip_group=float(e.get("skip_group", 0.02)),
                    hours=tuple(e.get("hours", (8, 17))),
                    ai_error_factor=float(factor),
                )
            )
        return engineers
