"""Are the audit's statistics honest? Coverage of the intervals and drift false-flag rates,
and the whole site's estimates against a review of every work order.

For many seeds, the simulator generates work orders, the toolkit loads them over HTTP and
computes per-task override rates with 95% Wilson intervals, which are compared with the
simulator's *true* override probability (from its ground-truth view). Then drift detection
(Fisher's exact test between app versions, Holm-adjusted over all tasks) runs on seeds without
drift (any flag is a false flag) and with the AI's error rates doubled after the upgrade
(flags are detections). Prints one JSON object.

Then fair rankings of field engineers: for ``--funnel-seeds`` seeds with per-engineer
differences in photo quality (``--engineers`` extra seeded technicians), :func:`dfs.funnel`
flags engineers outside the 99.8% funnel limits, and the flags are checked against each
engineer's true override probability from the ground truth:

- precision: the share of flagged engineers whose true rate is on the flagged side of the
  site's true rate (above for "above", below for "below"); also for "above" flags alone;
- recall: the share of engineers whose true rate is at least ``--recall-ratio`` times the
  site's (or at most its inverse) that are flagged on that side;
- top-5 overlap: how many of the 5 engineers with the highest true rate are among the top 5
  of the shrunken (empirical-Bayes) ranking, and among the top 5 of the raw rates.

The funnel part builds the tasks frame straight from the simulator's store (the very JSON the
API serves, through the same normalisation), without HTTP, so that many seeds stay quick.

Then the whole site, on simulators whose review queue the AI's verdicts steer
(``selective_review``) and whose AI errors come together by work order (``clustered_errors``),
against ``/_sim/truth``'s ``full_review`` (what a review of every work order would give):

- for ``--site-seeds`` seeds, ``--plans`` review plans each (:func:`dfs.audit.review_sample`,
  ``--plan-size`` work orders stratified by ``"ai_nonconformity"``): the coverage, bias and
  half-width of :func:`dfs.audit.site_estimate` with ``method="design"`` (non-conformity and
  override rates) and ``"ppi"`` (non-conformity rate), and the PPI half-width over the design
  half-width on the same sample; ``--srs-plans`` plans per seed drawn without strata give the
  same ratio where the plan does not already use the AI's verdicts;
- the naive reviewed-only figures (``override_rates(by=None)``, ``verdict_quality``'s
  prevalence, with their cluster-aware intervals), over the site's existing reviews and after a
  plan's reviews are added: their bias and coverage (the trap);
- for ``--review-seeds`` seeds, ``method="poststratified"`` on the existing reviews, and how
  often :func:`dfs.audit.review_bias` flags the selection (detection);
- for ``--random-seeds`` seeds whose reviews are random, how often ``review_bias`` flags
  anything (false flags; nominal 1%), and ``poststratified`` there.

Each plan must be reviewed on an unchanged site, and ``sim.review`` changes the site. Every
work order's review is drawn by the simulator up front, so the benchmark loads each seed twice
over HTTP, fresh and after ``sim.review`` of every work order, and builds each plan's frame
from the second for the plan's work orders and the first for the others. It holds this to the
real path on the first plan of each seed (``sim.review`` of that plan, then a reload):
``spliced_vs_reviewed_max_difference`` is the largest difference of estimates and bounds.

Targets: intervals cover the truth in >= 93% of cases; false-flag rate <= 5% of seeds;
funnel precision >= 90%; site-wide coverage >= 93%; PPI half-width <= 0.85 of the design's;
review_bias false flags at most about 1% of seeds. ``--quick`` runs everything small (under 2
minutes); ``--only-site`` / ``--only-funnel`` one part.
Usage: ``python benchmarks/audit_coverage.py [--quick] [--only-site] [--seeds 100]
[--work-orders 1500] [--funnel-seeds 60] [--funnel-work-orders 1500] [--engineers 30]
[--site-seeds 8] [--plans 40] [--plan-size 200] [--review-seeds 30] [--random-seeds 40]``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd

import dfs_analytics as dfs
from dfs_analytics import normalize
from dfs_analytics.simulator import SeedSettings, Simulator, generate, ground_truth


def load(seed: int, work_orders: int, drift: float) -> tuple[Any, dict[str, Any]]:
    store = generate(SeedSettings.defaults(work_orders=work_orders, seed=seed, drift=drift))
    with Simulator(store=store) as sim:
        client = dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, progress=False)
        return dfs.load_tasks(client), sim.truth()


def funnel_seed(seed: int, work_orders: int, engineers: int) -> tuple[Any, dict[str, Any]]:
    """Tasks frame and ground truth of one seed, built without HTTP."""
    store = generate(
        SeedSettings.defaults(work_orders=work_orders, seed=seed, extra_engineers=engineers)
    )
    payload = [wo.to_dict(inputs=False, task_groups=False) for wo in store.work_orders.values()]
    return normalize.tasks_frame(payload), ground_truth(store)


def funnel_figures(seeds: range, work_orders: int, engineers: int, ratio: float) -> dict:
    flagged = right = flagged_above = right_above = 0
    should = found = 0
    overlap_shrunk: list[int] = []
    overlap_raw: list[int] = []
    per_seed_engineers = []
    for seed in seeds:
        tasks, truth = funnel_seed(seed, work_orders, engineers)
        site = truth["site_override_probability"]
        table = dfs.funnel(tasks, by="field_engineer_email")
        table = table[table["n"] > 0]
        true = (
            table["field_engineer_email"]
            .astype(str)
            .map({e: v["override_probability"] for e, v in truth["engineers"].items()})
        )
        per_seed_engineers.append(len(table))
        for side, p in zip(table["side"], true, strict=True):
            if side:
                flagged += 1
                right += (p > site) if side == "above" else (p < site)
            if side == "above":
                flagged_above += 1
                right_above += p > site
            if p >= ratio * site or p <= site / ratio:
                should += 1
                found += side == ("above" if p > site else "below")
        best = set(true.sort_values(ascending=False).index[:5])
        shrunk = set(table["shrunk"].sort_values(ascending=False, kind="stable").index[:5])
        raw = set(table["rate"].sort_values(ascending=False, kind="stable").index[:5])
        overlap_shrunk.append(len(best & shrunk))
        overlap_raw.append(len(best & raw))
    count = len(seeds)
    return {
        "seeds": count,
        "work_orders_per_seed": work_orders,
        "engineers_per_seed": round(sum(per_seed_engineers) / count, 1),
        "limit": 0.998,
        "flagged": flagged,
        "precision": round(right / flagged, 4) if flagged else None,
        "flagged_above": flagged_above,
        "precision_above": round(right_above / flagged_above, 4) if flagged_above else None,
        "recall_ratio": ratio,
        "engineers_far_from_site": should,
        "recall": round(found / should, 4) if should else None,
        "top5_overlap_shrunk": round(sum(overlap_shrunk) / count, 3),
        "top5_overlap_raw": round(sum(overlap_raw) / count, 3),
    }


# --------------------------------------------------------------------------------------------
# The whole site: site_estimate against a review of every work order
# --------------------------------------------------------------------------------------------


def ids_of(frame: pd.DataFrame) -> list[str]:
    return sorted(frame["work_order_id"].astype(str).unique())


def splice(fresh: pd.DataFrame, full: pd.DataFrame, reviewed: list[str]) -> pd.DataFrame:
    """The tasks frame the site would give once ``reviewed`` work orders are reviewed: their
    rows from ``full`` (the frame after every work order was reviewed), the others' from
    ``fresh``. Each work order's review is drawn up front by the simulator, so this is the
    frame ``sim.review(reviewed)`` followed by a reload gives (checked on one plan per seed)."""
    chosen = set(reviewed)
    keep = ~fresh["work_order_id"].astype(str).isin(chosen)
    take = full["work_order_id"].astype(str).isin(chosen)
    out = pd.concat([fresh[keep], full[take]], ignore_index=True)
    out.attrs = dict(fresh.attrs)
    return out


ESTIMATES = (
    ("nonconformity_rate", "design"),
    ("nonconformity_rate", "ppi"),
    ("override_rate", "design"),
)


def estimates(tasks: pd.DataFrame, plan: pd.DataFrame, level: float) -> dict[str, Any]:
    out = {}
    for quantity, method in ESTIMATES:
        row = dfs.audit.site_estimate(tasks, plan, quantity=quantity, method=method, level=level)
        out[f"{quantity}/{method}"] = row.iloc[0].to_dict()
    return out


def naive(tasks: pd.DataFrame, level: float) -> dict[str, tuple[float, float, float]]:
    """The reviewed-only figures, with the toolkit's cluster-aware intervals: what an auditor
    gets by reading the reviewed work orders as if they were the site."""
    rate = dfs.override_rates(tasks, by=None, level=level).iloc[0]
    quality = dfs.audit.verdict_quality(tasks, by=None, level=level).iloc[0]
    return {
        "override_rate": (float(rate["rate"]), float(rate["ci_low"]), float(rate["ci_high"])),
        "nonconformity_rate": (
            float(quality["prevalence"]),
            float(quality["prevalence_low"]),
            float(quality["prevalence_high"]),
        ),
    }


def true_figures(sim: Any) -> dict[str, float]:
    full = sim.truth()["full_review"]
    return {
        "override_rate": full["override_rate"]["value"],
        "nonconformity_rate": full["nonconformity_rate"]["final"],
    }


class Tally:
    """Coverage, errors and half-widths of one kind of interval.

    Every figure pools the intervals added, each counting once: all plans of all seeds alike
    (the plans of one seed share its site and its truth, so they are not independent draws,
    and a seed with more plans weighs more). ``bias`` and ``rmse`` are in rate units (shares
    between 0 and 1), ``relative_bias`` the mean of each interval's error over its truth."""

    def __init__(self) -> None:
        self.covered: list[bool] = []
        self.errors: list[float] = []
        self.half: list[float] = []
        self.truths: list[float] = []

    def add(self, estimate: float, low: float, high: float, truth: float) -> None:
        self.covered.append(bool(low <= truth <= high))
        self.errors.append(estimate - truth)
        self.half.append((high - low) / 2)
        self.truths.append(truth)

    def add_row(self, row: Any, truth: float) -> None:
        """Add one row of :func:`dfs.audit.site_estimate` (its ``estimate``, ``ci_low`` and
        ``ci_high``)."""
        self.add(row["estimate"], row["ci_low"], row["ci_high"], truth)

    def figures(self) -> dict[str, Any]:
        n = len(self.covered)
        if not n:
            return {"intervals": 0}
        errors = np.asarray(self.errors)
        return {
            "intervals": n,
            "coverage": round(float(np.mean(self.covered)), 4),
            "bias": round(float(errors.mean()), 5),
            "relative_bias": round(float((errors / np.asarray(self.truths)).mean()), 4),
            "rmse": round(float(np.sqrt((errors**2).mean())), 5),
            "mean_half_width": round(float(np.mean(self.half)), 5),
        }


def width_ratio(ppi: Any, design: Any) -> float:
    """The PPI interval's width over the design interval's, on the same sample."""
    return (ppi["ci_high"] - ppi["ci_low"]) / (design["ci_high"] - design["ci_low"])


def bias_flags(tasks: pd.DataFrame) -> list[str]:
    table = dfs.audit.review_bias(tasks)
    return [str(f) for f in table.loc[table["flagged"], "feature"]]


def site_figures(args: argparse.Namespace) -> dict[str, Any]:
    """Plans on selective-review, clustered-error simulators; existing reviews on more of
    them; and review_bias on simulators whose reviews are random."""
    tallies: dict[str, Tally] = defaultdict(Tally)
    ratio_ppi: list[float] = []
    ratio_srs: list[float] = []
    fallbacks = 0
    not_reviewed = 0
    checks: list[float] = []
    detections: list[list[str]] = []
    false_flags: list[list[str]] = []
    truths: list[dict[str, float]] = []
    modes = {"selective_review": True, "clustered_errors": True}
    for index in range(args.review_seeds):
        seed = 3000 + index
        with Simulator(work_orders=args.site_work_orders, seed=seed, **modes) as sim:
            client = dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, progress=False)
            fresh = dfs.load_tasks(client)
            truth = true_figures(sim)
            truths.append(truth)
            detections.append(bias_flags(fresh))
            for quantity, (value, low, high) in naive(fresh, args.level).items():
                tallies[f"{quantity}/naive_existing_reviews"].add(value, low, high, truth[quantity])
                row = dfs.audit.site_estimate(fresh, quantity=quantity, level=args.level)
                tallies[f"{quantity}/poststratified"].add_row(row.iloc[0], truth[quantity])
            if index >= args.site_seeds:
                continue
            plans = [
                dfs.audit.review_sample(
                    fresh, args.plan_size, by="ai_nonconformity", seed=1000 * seed + i
                )
                for i in range(args.plans)
            ]
            # the first plan is reviewed through the API and read back, as a user would;
            # the check below holds the spliced frames to it
            sim.review(plans[0]["work_order_id"].tolist())
            reviewed_first = estimates(dfs.load_tasks(client), plans[0], args.level)
            sim.review(ids_of(fresh))
            full = dfs.load_tasks(client)
            for i, plan in enumerate(plans):
                tasks = splice(fresh, full, plan["work_order_id"].astype(str).tolist())
                result = estimates(tasks, plan, args.level)
                if i == 0:
                    checks.extend(
                        abs(result[k][c] - reviewed_first[k][c])
                        for k in result
                        for c in ("estimate", "ci_low", "ci_high")
                    )
                for key, row in result.items():
                    quantity = key.split("/")[0]
                    tallies[key].add_row(row, truth[quantity])
                    not_reviewed += int(row["not_yet_reviewed"])
                ppi, design = result["nonconformity_rate/ppi"], result["nonconformity_rate/design"]
                ratio_ppi.append(width_ratio(ppi, design))
                fallbacks += "did not narrow" in ppi["assumption"]
                for quantity, (value, low, high) in naive(tasks, args.level).items():
                    tallies[f"{quantity}/naive_after_plan"].add(value, low, high, truth[quantity])
            # PPI against design on plans that are not stratified by the AI's verdicts
            for i in range(args.srs_plans):
                plan = dfs.audit.review_sample(fresh, args.plan_size, seed=1000 * seed + 500 + i)
                tasks = splice(fresh, full, plan["work_order_id"].astype(str).tolist())
                rows = {}
                for method in ("design", "ppi"):
                    rows[method] = dfs.audit.site_estimate(
                        tasks, plan, quantity="nonconformity_rate", method=method, level=args.level
                    ).iloc[0]
                    tallies[f"nonconformity_rate/{method}_unstratified"].add_row(
                        rows[method], truth["nonconformity_rate"]
                    )
                ratio_srs.append(width_ratio(rows["ppi"], rows["design"]))
    for index in range(args.random_seeds):
        seed = 5000 + index
        with Simulator(work_orders=args.site_work_orders, seed=seed, clustered_errors=True) as sim:
            client = dfs.Client(sim.base_url, api_key=sim.api_key, cache=None, progress=False)
            fresh = dfs.load_tasks(client)
            truth = true_figures(sim)
            false_flags.append(bias_flags(fresh))
            for quantity in ("override_rate", "nonconformity_rate"):
                row = dfs.audit.site_estimate(fresh, quantity=quantity, level=args.level)
                tallies[f"{quantity}/poststratified_random_reviews"].add_row(
                    row.iloc[0], truth[quantity]
                )

    def flag_figures(flags: list[list[str]]) -> dict[str, Any]:
        per_feature: dict[str, int] = defaultdict(int)
        for found in flags:
            for feature in found:
                per_feature[feature] += 1
        seeds = len(flags)
        return {
            "seeds": seeds,
            "seeds_with_a_flag": sum(bool(f) for f in flags),
            "rate": round(sum(bool(f) for f in flags) / seeds, 4) if seeds else None,
            "flags_per_feature": dict(sorted(per_feature.items())),
        }

    ratio = np.asarray(ratio_ppi)
    by_quantity: dict[str, dict[str, Any]] = defaultdict(dict)
    for key, tally in sorted(tallies.items()):
        quantity, method = key.split("/")
        by_quantity[quantity][method] = tally.figures()
    return {
        "simulator": {
            "work_orders": args.site_work_orders,
            "selective_review": True,
            "clustered_errors": True,
            "mean_true_override_rate": round(
                float(np.mean([t["override_rate"] for t in truths])), 4
            ),
            "mean_true_nonconformity_rate": round(
                float(np.mean([t["nonconformity_rate"] for t in truths])), 4
            ),
        },
        "plans": {
            "seeds": min(args.site_seeds, args.review_seeds),
            "plans_per_seed": args.plans,
            "plans": len(ratio),
            "work_orders_per_plan": args.plan_size,
            "by": "ai_nonconformity",
            "sampled_not_yet_reviewed": not_reviewed,
            "how": "each seed's plans are drawn from the fresh frame; the first is reviewed with "
            "sim.review and read back over HTTP, then every work order is reviewed and read "
            "back, and each plan's frame takes its work orders' rows from that frame (the "
            "reviews are drawn up front, so this is the frame its own review gives)",
            "spliced_vs_reviewed_max_difference": round(max(checks), 12) if checks else None,
        },
        "level": args.level,
        "coverage": dict(by_quantity),
        "ppi_over_design_half_width": {
            "mean_ratio": round(float(ratio.mean()), 4) if len(ratio) else None,
            "ratio_of_means": round(
                by_quantity["nonconformity_rate"]["ppi"]["mean_half_width"]
                / by_quantity["nonconformity_rate"]["design"]["mean_half_width"],
                4,
            )
            if len(ratio)
            else None,
            "max_ratio": round(float(ratio.max()), 4) if len(ratio) else None,
            "fell_back_to_design": fallbacks,
            "unstratified_plans": len(ratio_srs),
            "unstratified_mean_ratio": round(float(np.mean(ratio_srs)), 4) if ratio_srs else None,
        },
        "review_bias": {
            "level": 0.01,
            "false_flags_random_reviews": flag_figures(false_flags),
            "detection_selective_reviews": flag_figures(detections),
        },
        "goals": {"coverage": ">= 0.93", "ppi_over_design_half_width": "<= 0.85"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="coverage and drift false-flag rates")
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--work-orders", type=int, default=1500)
    parser.add_argument("--level", type=float, default=0.95)
    parser.add_argument("--drift", type=float, default=2.0, help="multiplier for drift seeds")
    parser.add_argument("--drift-seeds", type=int, default=None, help="default: seeds / 5")
    parser.add_argument("--funnel-seeds", type=int, default=60)
    parser.add_argument("--funnel-work-orders", type=int, default=1500)
    parser.add_argument("--engineers", type=int, default=30, help="extra seeded technicians")
    parser.add_argument("--recall-ratio", type=float, default=1.5)
    parser.add_argument("--site-work-orders", type=int, default=2000)
    parser.add_argument("--site-seeds", type=int, default=8, help="seeds that draw plans")
    parser.add_argument("--plans", type=int, default=40, help="plans per seed")
    parser.add_argument("--plan-size", type=int, default=200, help="work orders per plan")
    parser.add_argument(
        "--review-seeds", type=int, default=30, help="selective-review seeds (plans or not)"
    )
    parser.add_argument(
        "--srs-plans", type=int, default=10, help="plans per seed not stratified (PPI vs design)"
    )
    parser.add_argument("--random-seeds", type=int, default=40, help="random-review seeds")
    parser.add_argument("--quick", action="store_true", help="a smaller run (under 2 minutes)")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--only-funnel", action="store_true", help="the funnel part only")
    only.add_argument("--only-site", action="store_true", help="the whole-site part only")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.work_orders, args.drift_seeds = 3, 600, 2
        args.funnel_seeds, args.funnel_work_orders = 3, 600
        args.site_work_orders, args.site_seeds, args.plans = 1000, 2, 8
        args.plan_size, args.review_seeds, args.random_seeds = 150, 3, 3
        args.srs_plans = 3
    t0 = time.perf_counter()
    if args.only_site:
        print(
            json.dumps(
                {
                    "benchmark": "audit_coverage",
                    "site": site_figures(args),
                    "seconds": round(time.perf_counter() - t0, 1),
                },
                indent=2,
            )
        )
        return
    funnel = funnel_figures(
        range(2000, 2000 + args.funnel_seeds),
        args.funnel_work_orders,
        args.engineers,
        args.recall_ratio,
    )
    if args.only_funnel:
        print(
            json.dumps(
                {
                    "benchmark": "audit_coverage",
                    "funnel": funnel,
                    "seconds": round(time.perf_counter() - t0, 1),
                },
                indent=2,
            )
        )
        return

    covered: dict[str, list[bool]] = defaultdict(list)
    false_flags = 0
    false_flag_tasks = 0
    for seed in range(args.seeds):
        tasks, truth = load(seed, args.work_orders, 1.0)
        rates = dfs.override_rates(tasks, level=args.level)
        for row in rates.itertuples(index=False):
            if row.n == 0:
                continue
            p = truth["tasks"][str(row.task_name)]["override_probability"]
            covered[str(row.task_name)].append(row.ci_low <= p <= row.ci_high)
        flags = dfs.drift(tasks, by="app_version_id", level=args.level)["flagged"]
        false_flags += bool(flags.any())
        false_flag_tasks += int(flags.sum())

    detections = 0
    detected_tasks = 0
    drift_seeds = args.drift_seeds if args.drift_seeds is not None else max(10, args.seeds // 5)
    for seed in range(1000, 1000 + drift_seeds):
        tasks, _ = load(seed, args.work_orders, args.drift)
        flags = dfs.drift(tasks, by="app_version_id", level=args.level)["flagged"]
        detections += bool(flags.any())
        detected_tasks += int(flags.sum())

    all_cov = [c for values in covered.values() for c in values]
    per_task = {name: round(sum(v) / len(v), 3) for name, v in sorted(covered.items())}
    print(
        json.dumps(
            {
                "benchmark": "audit_coverage",
                "seeds": args.seeds,
                "work_orders_per_seed": args.work_orders,
                "level": args.level,
                "coverage": {
                    "overall": round(sum(all_cov) / len(all_cov), 4),
                    "intervals": len(all_cov),
                    "worst_task": min(per_task.values()),
                    "per_task": per_task,
                },
                "drift_false_flags": {
                    "seeds_with_a_flag": false_flags,
                    "rate": round(false_flags / args.seeds, 4),
                    "flagged_task_changes": false_flag_tasks,
                },
                "drift_detection": {
                    "drift_multiplier": args.drift,
                    "seeds": drift_seeds,
                    "seeds_with_a_flag": detections,
                    "power": round(detections / drift_seeds, 3),
                    "flagged_task_changes_per_seed": round(detected_tasks / drift_seeds, 2),
                },
                "funnel": funnel,
                "site": site_figures(args),
                "seconds": round(time.perf_counter() - t0, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
