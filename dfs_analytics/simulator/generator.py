"""Seeded generation of realistic work orders, and the ground truth that goes with it.

Field engineers create work orders and take photos, the AI judges them with per-task error
rates (worse on poor photos, and after the app-version upgrade with ``drift``), some work
orders are reviewed later, and every work order carries the review it would get
(:class:`~.work_order.PotentialReview`). The whole story, step by step, is in
``docs/simulator.md`` ("How data is generated"). :func:`ground_truth` is computed from the
model, not counted from the data.

This module never serves anything and never reads the network or the clock: the same seed and
settings give the same data on any machine.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta
from typing import Any

from .apps import App, AppVersion, TaskDef, load_app, stable_id
from .review import ai_nonconformity, full_review_figures, photo_factor, selection_probabilities
from .seed import DEFAULT_REVIEWER, DEFAULT_WORK_ORDERS, Engineer, SeedSettings, as_utc_date
from .store import Store
from .work_order import PotentialReview, WorkOrder

__all__ = ["DEFAULT_WORK_ORDERS", "Engineer", "SeedSettings", "generate", "ground_truth"]


def site_id_for(app: App) -> str:
    return stable_id(app.name, "site")


def error_rate(
    task: TaskDef, version: AppVersion, settings: SeedSettings, engineer: Engineer | None = None
) -> float:
    """The AI's per-analysis error rate for ``task`` in ``version`` (drift after the upgrade)
    on the photos of ``engineer`` (times their ``ai_error_factor``)."""
    rate = task.error_rate * (settings.drift if version.number > 1 else 1.0)
    if engineer is not None:
        rate *= engineer.ai_error_factor
    return min(max(rate, 0.0), 1.0)


def _wrong_values(task: TaskDef, value: Any) -> list[tuple[Any, float]]:
    if task.outcome_type == "Boolean":
        return [(not value, 1.0)]
    return [(v, w) for v, w in task.truth if v != value or type(v) is not type(value)]


def _alternatives(task: TaskDef, value: Any) -> list[tuple[Any, float]]:
    """Values a reviewer could wrongly correct ``value`` to (allowed by the task's rules)."""
    return [(v, w) for v, w in _wrong_values(task, value) if task.allows(v)]


def review_target(
    rng: random.Random, task: TaskDef, ai: Any, true_value: Any, settings: SeedSettings
) -> Any:
    """The value a reviewer enters for a task the AI analysed as ``ai``: the true value for
    most AI errors, rarely a wrong one for a right verdict, sometimes the AI's own value
    (agreement), else None (nothing entered)."""
    p_false = settings.reviewer_overrides_right_verdict
    if ai != true_value or type(ai) is not type(true_value):
        if rng.random() < settings.reviewer_fixes_ai_error and task.allows(true_value):
            return true_value
        return None
    r = rng.random()
    alternatives = _alternatives(task, ai)
    if r < p_false and alternatives:
        return _pick(rng, alternatives)
    if p_false <= r < p_false + settings.reviewer_confirms_right_verdict:
        return ai
    return None


def _pick(rng: random.Random, choices: list[tuple[Any, float]]) -> Any:
    total = sum(w for _, w in choices)
    x = rng.random() * total
    for v, w in choices:
        x -= w
        if x < 0:
            return v
    return choices[-1][0]


class _Ids:
    def __init__(self, rng: random.Random):
        self.rng = rng

    def __call__(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))


def generate(settings: SeedSettings | None = None) -> Store:
    """Build a :class:`Store` filled with ``settings.work_orders`` generated work orders."""
    settings = settings or SeedSettings.defaults()
    app = load_app(settings.app)
    store = Store(app, site_id_for(app))
    store.settings = settings
    rng = random.Random(settings.seed)
    new_id = _Ids(rng)
    engineers = settings.engineer_profiles()
    eng_weights = [e.weight for e in engineers]
    start, end = as_utc_date(settings.start), as_utc_date(settings.end)
    days = max((end - start).total_seconds() / 86400.0, 1 / 24)
    upgrade = start + timedelta(days=days * settings.upgrade_at)
    v1, v2 = app.versions[0], app.versions[-1]
    type_names = list(v1.types)
    type_weights = [v1.type_weights[t] for t in type_names]
    reviewers = settings.reviewers or [DEFAULT_REVIEWER]
    tag_probs = [(str(t), float(p)) for t, p in settings.tags]
    regions = settings.regions or ["north", "south"]
    # streams of their own, so that the review model and the photo qualities shift no draw of
    # the data itself: with both modes off, a seed gives the data it always gave
    review_rng = random.Random(f"{settings.seed}/review")
    photo_rng = random.Random(f"{settings.seed}/photos")
    selective = settings.selective_review > 0
    pending: list[tuple[WorkOrder, datetime]] = []  # selective reviews: decided at the end

    def review(wo: WorkOrder, t: datetime) -> datetime:
        """Review ``wo`` some days after ``t`` (its potential review); returns the date."""
        reviewer = rng.choice(reviewers)
        when = t + timedelta(days=0.5 + rng.random() * 9.5)
        moments = sorted(rng.random() for _ in range(len(wo.states)))
        plan = PotentialReview(reviewer=reviewer, reviewed_at_start=True)
        k = 0
        for task in wo.active_tasks():
            state = wo.states.get(task.id)
            if state is None:
                continue
            ai = state["analyzed_value"]
            target = review_target(rng, task, ai, wo.truth.get(task.name), settings)
            plan.tasks[task.id] = (ai, target)
            if target is not None:
                moment = t + (when - t) * (0.5 + 0.5 * moments[k] * 0.999)
                k += 1
                store.apply_correction(
                    wo, task, target, when=moment, user=reviewer, event_id=new_id()
                )
        wo.potential_review = plan
        wo.review_date = when
        wo.events.append(Store.event(when, "review", event_id=new_id(), user=reviewer))
        return when

    work_orders: list[WorkOrder] = []
    names: list[str] = []
    for _ in range(settings.work_orders):
        eng = rng.choices(engineers, eng_weights)[0]
        day = int(rng.random() * days)
        h0, h1 = eng.hours
        created = start + timedelta(days=day, hours=h0 + rng.random() * (h1 - h0))
        created = min(created, end - timedelta(seconds=1))
        created = created.replace(microsecond=rng.randrange(1_000_000))
        version = v2 if created >= upgrade else v1
        if names and rng.random() < 0.02:
            name = rng.choice(names)  # names are not unique on the platform
        else:
            name = f"{rng.getrandbits(32):08X}"
            names.append(name)
        wo = WorkOrder(
            id=new_id(), name=name, site_id=store.site_id, app_version=version, create_date=created
        )
        wo.types = [] if rng.random() < 0.05 else [rng.choices(type_names, type_weights)[0]]
        wo.field_engineer_email = eng.email
        wo.field_engineer_name = eng.name
        wo.metadata = {
            "created_with": "mobile_app" if eng.name else "api",
            "region": rng.choice(regions),
        }
        if rng.random() < 0.5:
            wo.metadata["contract_id"] = f"C-{rng.randrange(10**6):06d}"
        wo.tags = [t for t, p in tag_probs if rng.random() < p]
        wo.photo_factor = photo_factor(photo_rng, settings.clustered_errors)
        user = eng.email
        wo.events.append(Store.event(created, "created", event_id=new_id(), user=user))
        t = created
        quality_truth: dict[str, bool] = {}
        for group in version.active_groups(wo.types):
            for task in group.job_tasks:
                wo.truth[task.name] = _pick(rng, task.truth)
            if rng.random() < eng.skip_group:
                continue
            for attempt in range(1, settings.max_attempts + 1):
                t += timedelta(seconds=30 + rng.random() * 600)
                values: dict[str, Any] = {}
                for task in group.quality_tasks:
                    good = rng.random() < eng.photo_quality
                    quality_truth[task.name] = good
                    wrong = rng.random() < error_rate(task, version, settings, eng)
                    values[task.name] = (not good) if wrong else good
                passed = all(values.values())
                if passed:
                    for task in group.job_tasks:
                        true_value = wo.truth[task.name]
                        e = error_rate(task, version, settings, eng)
                        if wo.photo_factor != 1.0:
                            e = min(e * wo.photo_factor, 1.0)
                        if rng.random() < e:
                            values[task.name] = _pick(rng, _wrong_values(task, true_value))
                        else:
                            values[task.name] = true_value
                analysis_id = new_id()
                url = f"https://storage.example.com/work-orders/{wo.id}/{group.name}-{attempt}.jpg"
                _, messages = store.apply_analysis(
                    wo,
                    group.name,
                    values,
                    when=t,
                    analysis_id=analysis_id,
                    user=user,
                    event_id=new_id(),
                )
                wo.inputs.append(
                    {
                        "id": new_id(),
                        "name": "image_input",
                        "task_group_name": group.name,
                        "analysis_id": analysis_id,
                        "date": wo.events[-1]["date"],
                        "data": {"type": "image", "value": url},
                        "conformity_messages": messages,
                        "_ai": values,
                    }
                )
                if passed or rng.random() >= eng.retake:
                    break
        wo.truth.update(quality_truth)
        if rng.random() < settings.metadata_update_rate:
            t += timedelta(hours=1 + rng.random() * 48)
            wo.metadata["checked"] = True
            wo.events.append(Store.event(t, "metadata_update", event_id=new_id(), user=None))
        if selective:
            pending.append((wo, t))
        elif rng.random() < settings.review_rate:
            t = review(wo, t)
        wo.update_date = t
        work_orders.append(wo)
    if pending:
        # the AI's verdicts steer the review queue: more reviews where it finds more non-conform
        shares = [ai_nonconformity(wo) for wo, _ in pending]
        chances = selection_probabilities(shares, settings.review_rate, settings.selective_review)
        for (wo, t), chance in zip(pending, chances, strict=True):
            if rng.random() < chance:
                wo.update_date = review(wo, t)
    for wo in work_orders:
        if wo.potential_review is None:  # what its reviewer would do, were it reviewed
            plan = PotentialReview(reviewer=review_rng.choice(reviewers))
            for task in wo.active_tasks():
                state = wo.states.get(task.id)
                if state is not None:
                    ai = state["analyzed_value"]
                    target = review_target(review_rng, task, ai, wo.truth.get(task.name), settings)
                    plan.tasks[task.id] = (ai, target)
            wo.potential_review = plan
    store.bulk_load(work_orders)
    return store


# --------------------------------------------------------------------------------------------
# Ground truth
# --------------------------------------------------------------------------------------------


def _quality_wrong_probability(e: float, eng: Engineer, attempts: int) -> float:
    """P(the final analysed value of a quality task is wrong) for one engineer's habits."""
    g = eng.photo_quality
    a = g * (1 - e) + (1 - g) * e  # P(the AI says "good photo") on one attempt
    if a <= 0:
        return g * e / 1.0
    q = eng.retake * (1 - a)
    p_false = (1 - a) * (
        (1 - eng.retake) * sum(q**j for j in range(attempts - 1)) + q ** (attempts - 1)
    )
    p_true = 1 - p_false
    wrong = p_true * (1 - g) * e / a
    if p_false > 0 and a < 1:
        wrong += p_false * g * e / (1 - a)
    return wrong


def _pass_probability(e: float, eng: Engineer, attempts: int) -> float:
    """P(a photo of ``eng`` eventually passes the AI's quality check, retakes included)."""
    g = eng.photo_quality
    a = g * (1 - e) + (1 - g) * e
    return sum(a * ((1 - a) * eng.retake) ** j for j in range(attempts))


def _group_share(version: AppVersion, group_name: str) -> float:
    """P(a work order of ``version`` has this task group active): 5% have no type (every
    group), the others one type drawn by weight."""
    total = sum(version.type_weights.values()) or 1.0
    typed = sum(
        w for t, w in version.type_weights.items() if group_name in version.types.get(t, ())
    )
    return 0.05 + 0.95 * typed / total


def ground_truth(store: Store) -> dict[str, Any]:
    """True parameters per task name (AI error rate and override probability, per app version)
    and per field engineer (their AI error factor and the override probability of their
    audited tasks, against the site's).

    ``override_probability`` is the probability that an analysed task of a reviewed work order
    ends with a corrected value that differs from the analysed one. For quality tasks it accounts
    for the engineers' retakes (a retake happens after a "bad photo" verdict, so the final
    verdict is not a random draw). Per task, engineers are weighted by how many analyses of
    that task they contribute; per engineer, tasks by how often that engineer's work orders
    have them analysed. ``engineers`` is keyed by email (``"(none)"`` for work orders created
    without one); ``site_override_probability`` is the rate over all audited tasks. These are
    probabilities of the model, for a work order reviewed at random; with ``selective_review``
    the reviewed work orders are not random, and these describe a review of every work order.

    ``full_review`` holds the figures a review of every generated work order would give, counted
    from their potential reviews (:func:`.review.full_review_figures`): the site-wide override
    and non-conformity rates, overall and per task name, exact for the data, not a model.
    """
    settings: SeedSettings = store.settings
    app = store.app
    engineers = settings.engineer_profiles()
    p_fix = settings.reviewer_fixes_ai_error
    p_false = settings.reviewer_overrides_right_verdict
    weights = {1: settings.upgrade_at, len(app.versions): 1 - settings.upgrade_at}
    share = sum(e.weight for e in engineers) or 1.0
    tasks: dict[str, Any] = {}
    # per engineer: sum of analysed-task weights and of weight x override probability
    eng_n = [0.0] * len(engineers)
    eng_k = [0.0] * len(engineers)
    for version in app.versions:
        v_weight = weights.get(version.number, 0.0)
        for group in version.groups:
            quality = group.quality_tasks[0] if group.quality_tasks else None
            g_share = _group_share(version, group.name)
            for task in group.tasks:
                if task.is_quality:
                    can_override_right = p_false  # both verdicts of a photo check are allowed
                else:
                    # a wrong override of a right verdict needs an allowed alternative to it
                    total = sum(wt for _, wt in task.truth)
                    can_override_right = (
                        p_false * sum(wt for v, wt in task.truth if _alternatives(task, v)) / total
                    )
                w_sum = wrong_sum = over_sum = 0.0
                for i, eng in enumerate(engineers):
                    e = error_rate(task, version, settings, eng)
                    if task.is_quality:
                        analysed = 1.0
                        wrong = _quality_wrong_probability(e, eng, settings.max_attempts)
                    else:
                        e_q = error_rate(quality, version, settings, eng) if quality else 0.0
                        analysed = (
                            _pass_probability(e_q, eng, settings.max_attempts) if quality else 1.0
                        )
                        wrong = e
                    override = wrong * p_fix + (1 - wrong) * can_override_right
                    w = eng.weight / share * (1 - eng.skip_group) * analysed
                    w_sum += w
                    wrong_sum += w * wrong
                    over_sum += w * override
                    eng_n[i] += v_weight * g_share * (1 - eng.skip_group) * analysed
                    eng_k[i] += v_weight * g_share * (1 - eng.skip_group) * analysed * override
                e = error_rate(task, version, settings)
                entry = tasks.setdefault(
                    task.name,
                    {
                        "task_group_name": task.group_name,
                        "outcome_type": task.outcome_type,
                        "is_quality": task.is_quality,
                        "by_app_version": {},
                    },
                )
                entry["by_app_version"][version.id] = {
                    "label": version.label,
                    "ai_error_rate": e,
                    "final_error_rate": wrong_sum / w_sum if w_sum else 0.0,
                    "override_probability": over_sum / w_sum if w_sum else 0.0,
                    "weight": weights.get(version.number, 0.0),
                }
    for entry in tasks.values():
        versions = entry["by_app_version"].values()
        total = sum(v["weight"] for v in versions) or 1.0
        for key in ("ai_error_rate", "final_error_rate", "override_probability"):
            entry[key] = sum(v[key] * v["weight"] for v in versions) / total
    per_engineer: dict[str, Any] = {}
    for i, eng in enumerate(engineers):
        key = eng.email or "(none)"
        per_engineer[key] = {
            "name": eng.name,
            "weight": eng.weight / share,
            "photo_quality": eng.photo_quality,
            "ai_error_factor": eng.ai_error_factor,
            "override_probability": eng_k[i] / eng_n[i] if eng_n[i] else 0.0,
            "tasks_per_work_order": eng_n[i],
        }
    site_n = sum(e["weight"] * e["tasks_per_work_order"] for e in per_engineer.values())
    site_k = sum(
        e["weight"] * e["tasks_per_work_order"] * e["override_probability"]
        for e in per_engineer.values()
    )
    return {
        "app": app.name,
        "seed": settings.seed,
        "work_orders": settings.work_orders,
        "settings": settings.as_dict(),
        "app_versions": [{"id": v.id, "label": v.label, "number": v.number} for v in app.versions],
        "upgrade_date": (
            as_utc_date(settings.start)
            + (as_utc_date(settings.end) - as_utc_date(settings.start)) * settings.upgrade_at
        ).isoformat(),
        "tasks": tasks,
        "engineers": per_engineer,
        "site_override_probability": site_k / site_n if site_n else 0.0,
        "full_review": full_review_figures(store),
    }
