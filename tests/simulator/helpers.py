"""Shared builders for the simulator's contract tests (``test_contract_*.py``).

The contract tests talk to a real simulator over HTTP with ``requests``. Write tests create
their own work orders on ``contract_sim`` (a session simulator of these tests only, so the
shared ``dfs_simulator`` of other suites is left alone); read-only list tests use their own
module simulator.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

import requests

from dfs_analytics.simulator import Simulator

from ..helpers import image_url, task_of

KEY = "demo-key"  # the simulator's default API key
AUTH = {"Authorization": f"Token {KEY}"}

# ISO-8601 UTC with a Z; a fraction, when there is one, is not all zeros
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.(?!0+Z)\d{1,6})?Z$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

WORK_ORDER_KEYS = {
    "id",
    "name",
    "site_id",
    "app_version_id",
    "create_date",
    "update_date",
    "review_date",
    "first_analysis_id",
    "latest_analysis_id",
    "progress_score",
    "metadata",
    "tags",
    "types",
    "field_engineer_email",
    "field_engineer_name",
    "tasks",
}
TASK_KEYS = {
    "id",
    "name",
    "sentence",
    "mandatory",
    "only_for_dashboard",
    "conformity_status",
    "outcome_display",
    "outcome_type",
    "outcome_validation",
    "questionnaire_id",
}
WO_TASK_KEYS = TASK_KEYS | {"task_group_id", "task_group_name", "state"}
STATE_KEYS = {
    "analyzed_value",
    "corrected_value",
    "message",
    "is_conform",
    "analysis_id",
    "update_date",
}
RULE_KEYS = {"schema", "sentence", "color", "not_analyzed", "is_conformity_validated"}
GROUP_KEYS = {
    "id",
    "name",
    "description",
    "order",
    "input_examples",
    "tasks",
    "remote_algorithm_instances",
}
EVENT_KEYS = {"id", "date", "type", "user", "analysis_id", "task_group_name", "states"}
EVENT_STATE_KEYS = {
    "task_id",
    "task_name",
    "analyzed_value",
    "corrected_value",
    "message",
    "is_conform",
}
EVENT_TYPES = {"created", "analysis", "correction", "review", "metadata_update", "updated"}
# the query parameters of GET work-orders/ (CONTRACT.md)
LIST_PARAMS = (
    "page",
    "page_size",
    "created_after",
    "created_before",
    "updated_after",
    "updated_before",
    "reviewed",
    "name",
    "tag",
    "field_engineer_email",
    "ordering",
)

# fiber-connection: the tasks of each task group (current app version)
GROUP_TASKS = {
    "pb-ferme-avant": ["pb_ferme_avant_quality", "pb_etiquette_presente", "photo_environnement"],
    "pb-ouvert-apres": [
        "pb_ouvert_apres_quality",
        "cables_ranges",
        "nombre_connecteurs",
        "couleur_fibre",
        "etiquette_lisible",
    ],
    "pm-ouvert-apres": [
        "pm_ouvert_apres_quality",
        "jarretiere_connectee",
        "bouchon_retire",
        "numero_serie",
    ],
    "releve-optique": ["releve_optique_quality", "mesure_puissance"],
}
TYPE_GROUPS = {
    "raccordement": ["pb-ferme-avant", "pb-ouvert-apres", "pm-ouvert-apres", "releve-optique"],
    "maintenance": ["pm-ouvert-apres", "releve-optique"],
}


def parse_date(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def analyze_body(group: str, value: str, **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "image_input", "data": {"type": "image", "value": value}},
            {"name": "context", "data": {"type": "text", "value": group}},
        ],
        "metadata": {},
        **extra,
    }


def state_of(wo: dict[str, Any], name: str) -> dict[str, Any] | None:
    return task_of(wo, name)["state"]


def assert_error(r: requests.Response, status: int, field: str | None = None) -> dict[str, Any]:
    """The answer has ``status`` and an error body of the contract; ``field`` is named in it."""
    assert r.status_code == status, (r.status_code, r.text[:500])
    body = r.json()
    assert isinstance(body, dict) and body, body
    if field is not None:
        assert field in body, body
        assert isinstance(body[field], list) and body[field], body
        assert all(isinstance(m, str) and m for m in body[field]), body
    elif status == 400:
        for key, value in body.items():
            if key == "detail":
                assert isinstance(value, str) and value
            else:
                assert isinstance(value, list) and all(isinstance(m, str) for m in value), body
    else:
        assert isinstance(body.get("detail"), str) and body["detail"], body
    return body


def schema_matches(schema: dict[str, Any], value: Any) -> bool:
    """An independent check of the JSON-schema subset the apps' rules use."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    kind = schema.get("type")
    if kind == "boolean" and not isinstance(value, bool):
        return False
    if kind == "number" and not number:
        return False
    if kind == "integer" and not (number and float(value).is_integer()):
        return False
    if kind == "string" and not isinstance(value, str):
        return False

    def same(a: Any, b: Any) -> bool:
        if isinstance(a, bool) or isinstance(b, bool):
            return type(a) is type(b) and a == b
        return a == b

    if "const" in schema and not same(schema["const"], value):
        return False
    if "enum" in schema and not any(same(v, value) for v in schema["enum"]):
        return False
    if number:
        if "minimum" in schema and value < schema["minimum"]:
            return False
        if "maximum" in schema and value > schema["maximum"]:
            return False
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            return False
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            return False
    if isinstance(value, str) and "pattern" in schema:
        # ECMA-262 semantics: '$' is the end of the string only
        pattern = schema["pattern"].replace("$", r"\Z")
        if re.search(pattern, value) is None:
            return False
    return True


def expected_verdict(task: dict[str, Any], effective: Any) -> tuple[Any, Any]:
    for rule in task["outcome_validation"] or ():
        if schema_matches(rule["schema"], effective):
            return rule["sentence"], rule["is_conformity_validated"]
    return None, None


def expected_progress(wo: dict[str, Any]) -> int:
    counted = [t for t in wo["tasks"] if t["conformity_status"]]
    if not counted:
        return 0
    ok = sum(1 for t in counted if (t["state"] or {}).get("is_conform") is True)
    return (200 * ok + len(counted)) // (2 * len(counted))  # round half up, in integers


class Api:
    """A ``requests.Session`` on the simulator's base URL with the ``Authorization`` header."""

    def __init__(self, sim: Simulator):
        self.sim = sim
        self.base = sim.base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {sim.api_key}"

    def url(self, path: str) -> str:
        return path if path.startswith("http") else self.base + path

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        return self.session.request(method, self.url(path), **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    # -- work orders ------------------------------------------------------------------------

    def create(self, **body: Any) -> dict[str, Any]:
        body.setdefault("name", "contract-" + uuid.uuid4().hex[:12])
        r = self.post("work-orders/", json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def retrieve(self, wo_id: str, **params: Any) -> dict[str, Any]:
        r = self.get(f"work-orders/{wo_id}/", params=params)
        assert r.status_code == 200, r.text
        return r.json()

    def analyze_raw(self, wo_id: str, group: str, value: str, **extra: Any) -> requests.Response:
        return self.post(f"work-orders/{wo_id}/analyze/", json=analyze_body(group, value, **extra))

    def analyze(self, wo_id: str, group: str, *, good_photo: bool = True, **values: Any) -> dict:
        """Analyse a photo of ``group`` whose AI values are forced (quality passes by default)."""
        forced = {f"{group.replace('-', '_')}_quality": good_photo, **values}
        r = self.analyze_raw(wo_id, group, image_url(**forced))
        assert r.status_code == 200, r.text
        return r.json()

    def correct(self, wo_id: str, task_id: str, value: Any) -> requests.Response:
        return self.patch(
            f"work-orders/{wo_id}/tasks/{task_id}/correction/", json={"corrected_value": value}
        )

    def timeline(self, wo_id: str) -> list[dict[str, Any]]:
        results, _ = self.walk(f"work-orders/{wo_id}/timeline/", {"page_size": 1000})
        return results

    # -- pages ------------------------------------------------------------------------------

    def walk(self, path: str, params: Any = None) -> tuple[list[dict[str, Any]], int]:
        """All results of a list, following ``next``; checks every page's envelope."""
        results: list[dict[str, Any]] = []
        url: str | None = self.url(path)
        count = None
        first = True
        while url is not None:
            r = self.get(url, params=params if first else None)
            first = False
            assert r.status_code == 200, r.text
            page = r.json()
            assert set(page) == {"count", "next", "previous", "results"}, set(page)
            if count is None:
                count = page["count"]
            assert page["count"] == count
            results.extend(page["results"])
            url = page["next"]
            assert len(results) <= count, "the pages hold more results than count"
        assert count is not None
        return results, count
