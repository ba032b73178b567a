"""App definitions (task groups, tasks, verdict rules) and the value rules of the simulator.

An *app* is read from ``data/apps/<name>.json``. Each app has two versions; the second one
stands for an upgrade of the deployed site: every task and task-group id changes, names stay,
tasks marked ``since_version: 2`` appear and ``version_changes`` may reword verdicts.

Ids are derived with :func:`uuid.uuid5` from the app name, version and names, so the same app
always gets the same ids, whatever the seed. A task's verdicts and allowed corrections are judged
by the simulator's own JSON-schema checks (:mod:`.verdicts`, loaded on first use).

This module never changes an app once loaded (apps are cached and shared) and never imports
the ``sim`` extra at import time: the generator and the rest of the package import it without.
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..rules import OUTCOME_TYPES

if TYPE_CHECKING:
    from .verdicts import RuleJudge

NAMESPACE = uuid.UUID("6b3f5f0e-2f7d-4d0c-9a39-8f1d2f4c1a00")


def data_dir() -> Path:
    """Return the folder holding ``apps/`` and ``seed.json`` (installed copy or source tree)."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[1] / "_data", here.parents[2] / "data"):
        if (candidate / "apps").is_dir():
            return candidate
    raise FileNotFoundError("dfs-analytics simulator data folder not found (data/apps)")


def available_apps() -> list[str]:
    """Names of the app definitions shipped with the simulator."""
    return sorted(p.stem for p in (data_dir() / "apps").glob("*.json"))


def stable_id(*parts: object) -> str:
    return str(uuid.uuid5(NAMESPACE, "/".join(str(p) for p in parts)))


# --------------------------------------------------------------------------------------------
# Definitions
# --------------------------------------------------------------------------------------------


@dataclass
class TaskDef:
    """One task of one app version, with the simulation parameters that go with it."""

    id: str
    name: str
    group_id: str
    group_name: str
    outcome_type: str
    rules: list[dict[str, Any]] | None
    conformity_status: bool
    public: dict[str, Any]  # the API object, without ``state``
    error_rate: float
    truth: list[tuple[Any, float]]  # weighted true values
    is_quality: bool

    @cached_property
    def judge(self) -> RuleJudge:
        """The task's rules checked by the simulator's own JSON-schema judge (built on first
        use: it needs the ``sim`` extra, which importing this module does not)."""
        from .verdicts import RuleJudge

        return RuleJudge(self.rules)

    def verdict(self, value: object) -> tuple[str | None, bool | None]:
        """Return ``(message, is_conform)`` for an effective value: the first matching rule."""
        return self.judge.verdict(value)

    def allows(self, value: object) -> bool:
        """Whether a correction to ``value`` is accepted (any value when there are no rules)."""
        return self.judge.allows(value)

    def conform(self, value: object) -> bool:
        return self.verdict(value)[1] is True


@dataclass
class GroupDef:
    id: str
    name: str
    order: int
    public: dict[str, Any]  # the API object, tasks included (without ``state``)
    tasks: list[TaskDef]

    @property
    def quality_tasks(self) -> list[TaskDef]:
        return [t for t in self.tasks if t.is_quality]

    @property
    def job_tasks(self) -> list[TaskDef]:
        return [t for t in self.tasks if not t.is_quality]


@dataclass
class AppVersion:
    app: str
    number: int  # 1-based
    label: str
    id: str
    groups: list[GroupDef]
    types: dict[str, list[str]]  # work-order type name -> task group names
    type_weights: dict[str, float]
    groups_by_name: dict[str, GroupDef] = field(default_factory=dict)
    tasks_by_id: dict[str, TaskDef] = field(default_factory=dict)
    tasks_by_name: dict[str, TaskDef] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.groups_by_name = {g.name: g for g in self.groups}
        self.tasks_by_id = {t.id: t for g in self.groups for t in g.tasks}
        self.tasks_by_name = {t.name: t for g in self.groups for t in g.tasks}

    def active_groups(self, types: list[str]) -> list[GroupDef]:
        """Task groups of a work order of these types (no types: every group)."""
        if not types:
            return self.groups
        names: set[str] = set()
        for t in types:
            names.update(self.types.get(t, ()))
        return [g for g in self.groups if g.name in names]


@dataclass
class App:
    name: str
    description: str
    versions: list[AppVersion]

    @property
    def current(self) -> AppVersion:
        return self.versions[-1]


def _truth(task: dict[str, Any]) -> list[tuple[Any, float]]:
    if "truth" in task:
        return [(v, float(w)) for v, w in task["truth"]]
    if task["outcome_type"] == "Boolean":
        return [(True, 0.9), (False, 0.1)]
    raise ValueError(f"task {task['name']} needs a 'truth' distribution")


@lru_cache(maxsize=16)
def load_app(name: str) -> App:
    """Load ``data/apps/<name>.json`` into an :class:`App` with all its versions."""
    path = data_dir() / "apps" / f"{name}.json"
    if not path.exists():
        raise ValueError(f"unknown app {name!r}; available: {', '.join(available_apps())}")
    spec = json.loads(path.read_text())
    versions = []
    for number, vspec in enumerate(spec["versions"], start=1):
        changes = (spec.get("version_changes") or {}).get(str(number), {})
        rule_sets = copy.deepcopy(spec.get("rule_sets", {}))
        for set_name, renames in changes.get("rule_sentences", {}).items():
            for rule in rule_sets[set_name]:
                rule["sentence"] = renames.get(rule["sentence"], rule["sentence"])
        groups = []
        for gspec in spec["task_groups"]:
            gid = stable_id(spec["name"], number, "group", gspec["name"])
            tasks = []
            for tspec in gspec["tasks"]:
                if tspec.get("since_version", 1) > number:
                    continue
                if tspec["outcome_type"] not in OUTCOME_TYPES:
                    raise ValueError(f"{name}: bad outcome_type for {tspec['name']}")
                rules = tspec.get("rules")
                if isinstance(rules, str):
                    rules = rule_sets[rules]
                tid = stable_id(spec["name"], number, "task", gspec["name"], tspec["name"])
                public = {
                    "id": tid,
                    "name": tspec["name"],
                    "sentence": tspec.get("sentence", tspec["name"].replace("_", " ").capitalize()),
                    "mandatory": tspec.get("mandatory", True),
                    "only_for_dashboard": tspec.get("only_for_dashboard", False),
                    "conformity_status": tspec.get("conformity_status", True),
                    "outcome_display": tspec.get("outcome_display", "Select"),
                    "outcome_type": tspec["outcome_type"],
                    "outcome_validation": rules,
                    "questionnaire_id": gid,
                }
                tasks.append(
                    TaskDef(
                        id=tid,
                        name=tspec["name"],
                        group_id=gid,
                        group_name=gspec["name"],
                        outcome_type=tspec["outcome_type"],
                        rules=rules,
                        conformity_status=public["conformity_status"],
                        public=public,
                        error_rate=float(tspec.get("error_rate", 0.05)),
                        truth=_truth(tspec),
                        is_quality=tspec["name"].endswith("_quality"),
                    )
                )
            public_group = {
                "id": gid,
                "name": gspec["name"],
                "description": gspec.get("description", ""),
                "order": gspec.get("order", 0),
                "input_examples": [
                    f"https://storage.example.com/task-group-examples/{gspec['name']}.jpg"
                ],
                "tasks": [t.public for t in tasks],
                "remote_algorithm_instances": [],
            }
            groups.append(GroupDef(gid, gspec["name"], public_group["order"], public_group, tasks))
        versions.append(
            AppVersion(
                app=spec["name"],
                number=number,
                label=vspec.get("label", str(number)),
                id=stable_id(spec["name"], number, "app-version"),
                groups=groups,
                types={t["name"]: list(t["task_groups"]) for t in spec["work_order_types"]},
                type_weights={
                    t["name"]: float(t.get("weight", 1)) for t in spec["work_order_types"]
                },
            )
        )
    return App(spec["name"], spec.get("description", ""), versions)
