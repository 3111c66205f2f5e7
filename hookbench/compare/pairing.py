"""Pairing two logs item by item, by each log's own item id, per task and metric, refusing what would
make a paired test wrong: duplicate ids, ids in one log only (unless `intersect`), the same id with
different content (prompt, target or document hashes), a metric or task in one log only.

An item's score is its mean over its draws (inspect epochs, hookbench draws); items sharing a query
(a prompt hash, a query text) are one cluster, as in a job's own test.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from hookbench.base.errors import DataError
from hookbench.compare.logs import Log, Score

SHOWN = 5  # ids named in an error before "..."

Index = dict[tuple[str, str], dict[str, list[Score]]]  # (task, metric) -> item id -> its scores, one per draw


@dataclass(frozen=True)
class Paired:
    """One task's metric on the items both logs scored: A's and B's per-item scores in the same order."""

    task: str
    metric: str
    ids: list[str]
    a: list[float]
    b: list[float]
    clusters: list[str]
    draws: int  # the most draws any item has in either log (1: one score per item)
    higher_is_better: bool


@dataclass
class Pairing:
    """The paired metrics, what --intersect left out (task -> ids), and the metrics not compared."""

    pairs: list[Paired]
    only_a: dict[str, list[str]] = field(default_factory=dict)
    only_b: dict[str, list[str]] = field(default_factory=dict)
    skipped: dict[tuple[str, str], str] = field(default_factory=dict)


def first_ids(ids: list[str]) -> str:
    shown = ", ".join(ids[:SHOWN])
    return shown + (", ..." if len(ids) > SHOWN else "")


def index(log: Log) -> Index:
    """The log's scores by task, metric and item; an item scored twice in one draw is refused."""
    found: Index = defaultdict(lambda: defaultdict(list))
    for s in log.scores:
        found[(s.task, s.metric)][s.item].append(s)
    for (task, metric), items in found.items():
        twice = [i for i, ss in items.items() if len({s.draw for s in ss}) < len(ss)]
        if twice:
            raise DataError(f"{log.source}: task {task}, metric {metric}: {len(twice)} item ids appear more than "
                            f"once (first: {first_ids(twice)}); each item must be scored once per draw")
    return found


def pair_logs(a: Log, b: Log, intersect: bool) -> Pairing:
    """Every (task, metric) both logs have, paired by item id; see the module docstring for what is refused."""
    ia, ib = index(a), index(b)
    pairing = Pairing([], skipped={**a.skipped, **b.skipped})
    tasks = _common_tasks(a, b, ia, ib, intersect, pairing)
    for key in sorted(k for k in set(ia) | set(ib) if k[0] in tasks and k not in pairing.skipped):
        if key not in ia or key not in ib:
            missing, other = (a, b) if key not in ia else (b, a)
            raise DataError(f"{missing.source}: task {key[0]} has no metric {key[1]}, which {other.source} has; "
                            "compare needs each metric in both logs")
        pairing.pairs.append(_pair(a, b, key, ia[key], ib[key], intersect, pairing))
    return pairing


def _common_tasks(a: Log, b: Log, ia: Index, ib: Index, intersect: bool, pairing: Pairing) -> set[str]:
    ta, tb = {t for t, _ in ia}, {t for t, _ in ib}
    if (ta - tb or tb - ta) and not intersect:
        sides = [f"{', '.join(sorted(only))} only in {log.source}" for log, only in ((a, ta - tb), (b, tb - ta)) if only]
        raise DataError(f"tasks in one log only: {'; '.join(sides)}; pass --intersect to compare the "
                        f"{len(ta & tb)} tasks in both")
    for t in sorted(ta - tb):
        pairing.only_a[t] = ["(whole task)"]
    for t in sorted(tb - ta):
        pairing.only_b[t] = ["(whole task)"]
    if not ta & tb:
        raise DataError(f"{a.source} and {b.source} have no task in common ({sorted(ta)} vs {sorted(tb)})")
    return ta & tb


def _pair(a: Log, b: Log, key: tuple[str, str], sa: dict[str, list[Score]], sb: dict[str, list[Score]],
          intersect: bool, pairing: Pairing) -> Paired:
    task, metric = key
    only_a, only_b = [i for i in sa if i not in sb], [i for i in sb if i not in sa]
    common = [i for i in sa if i in sb]
    if (only_a or only_b) and not intersect:
        sides = [f"{len(ids)} item ids only in {log.source} (first: {first_ids(ids)})"
                 for log, ids in ((a, only_a), (b, only_b)) if ids]
        raise DataError(f"task {task}, metric {metric}: {' and '.join(sides)}; pass --intersect to compare "
                        f"the {len(common)} items in both")
    if only_a:
        pairing.only_a[task] = sorted(set(pairing.only_a.get(task, [])) | set(only_a))
    if only_b:
        pairing.only_b[task] = sorted(set(pairing.only_b.get(task, [])) | set(only_b))
    _check_content(a, b, task, common, sa, sb)
    draws = max(len(ss) for ss in (*[sa[i] for i in common], *[sb[i] for i in common]))
    return Paired(task, metric, common, [_mean(sa[i]) for i in common], [_mean(sb[i]) for i in common],
                  [sa[i][0].cluster or f"item {i}" for i in common], draws,
                  a.higher_is_better.get(key, True))


def _check_content(a: Log, b: Log, task: str, common: list[str], sa: dict[str, list[Score]],
                   sb: dict[str, list[Score]]) -> None:
    """The same id must be the same item: every hash both logs record for it agrees."""
    differ: dict[str, list[str]] = defaultdict(list)
    for i in common:
        ha, hb = dict(sa[i][0].hashes), dict(sb[i][0].hashes)
        for name in sorted(set(ha) & set(hb)):
            if ha[name] != hb[name]:
                differ[name].append(i)
    if differ:
        parts = "; ".join(f"{name} differs for {len(ids)} (first: {first_ids(ids)})" for name, ids in differ.items())
        raise DataError(f"task {task}: the same item ids hold different items in {a.source} and {b.source}: {parts}")


def _mean(scores: list[Score]) -> float:
    return sum(s.value for s in scores) / len(scores)
