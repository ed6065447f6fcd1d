"""Shadow scoring: a candidate model scores the live traffic next to the active one.

The scoring path only calls ``offer``: a ``put_nowait`` on a bounded queue (rows
beyond its size are dropped and counted, never waited for). A background task
drains the queue in batches, scores them with the candidate in its own thread and
updates the comparison metrics. The candidate never sees the request, never
changes a decision and never holds a response back.

``python -m app.shadow report --metrics URL_OR_FILE`` summarises those metrics
(agreement, score shift, decision changes) so promotion is a decision on data.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from prometheus_client import Counter, Histogram

from app.model import ScoringModel

log = logging.getLogger("fraudstack.shadow")

DECISIONS = ("approve", "review", "decline")
SHIFT_BUCKETS = (-0.5, -0.2, -0.1, -0.05, -0.02, -0.01, -0.001, 0.001, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)

SHADOW_SCORED = Counter("fraudstack_shadow_scored_total", "Transactions scored by the shadow candidate",
                        ["active", "candidate"])
SHADOW_AGREED = Counter("fraudstack_shadow_agreed_total", "Shadow scores whose decision equals the active one",
                        ["active", "candidate"])
SHADOW_CHANGES = Counter("fraudstack_shadow_decision_changes_total", "Decisions the candidate would have changed",
                         ["active", "candidate", "from_decision", "to_decision"])
SHADOW_SHIFT = Histogram("fraudstack_shadow_score_shift", "Candidate score minus active score",
                         ["active", "candidate"], buckets=SHIFT_BUCKETS)
# Histograms with negative buckets carry no _sum (OpenMetrics), so the signed mean
# comes from these two sums: rises and falls of the candidate's score.
SHADOW_RISE = Counter("fraudstack_shadow_score_rise_total", "Sum of positive (candidate - active) score shifts",
                      ["active", "candidate"])
SHADOW_FALL = Counter("fraudstack_shadow_score_fall_total", "Sum of |negative (candidate - active)| score shifts",
                      ["active", "candidate"])
SHADOW_DROPPED = Counter("fraudstack_shadow_dropped_total", "Rows not shadow-scored because the queue was full")


class ShadowScorer:
    """Scores offered rows with a candidate model off the request path."""

    def __init__(self, candidate: ScoringModel, queue_size: int = 10_000, max_batch: int = 512) -> None:
        self.candidate, self.max_batch = candidate, max_batch
        self.queue: asyncio.Queue[tuple[np.ndarray, float, str, str]] = asyncio.Queue(maxsize=queue_size)
        # Its own single thread: the candidate never competes for the active model's workers.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow")
        self._task: asyncio.Task[None] | None = None

    @property
    def version(self) -> str:
        """Candidate version."""
        return self.candidate.version

    def offer(self, x: np.ndarray, score: float, decision: str, active_version: str) -> bool:
        """Queue one scored row for the candidate; False (and counted) when the queue is full."""
        try:
            self.queue.put_nowait((x, float(score), decision, active_version))
        except asyncio.QueueFull:
            SHADOW_DROPPED.inc()
            return False
        return True

    def offer_many(self, x: np.ndarray, scores: Iterable[float], decisions: Iterable[str], active_version: str) -> int:
        """Queue a batch's rows; returns how many were accepted."""
        return sum(self.offer(row, s, d, active_version) for row, s, d in zip(x, scores, decisions))

    def start(self) -> None:
        """Start the background scorer on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def drain(self) -> None:
        """Wait until every queued row has been scored (tests, shutdown)."""
        await self.queue.join()

    async def stop(self) -> None:
        """Score what is queued, then stop."""
        if self._task is not None:
            await asyncio.wait_for(self.drain(), timeout=10)
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._pool.shutdown(wait=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.max_batch and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                x = np.stack([row for row, _, _, _ in batch])
                probs = await loop.run_in_executor(self._pool, self.candidate.probabilities, x)
                self.record(batch, probs[:, 1].astype(np.float64))
            except Exception as exc:  # a broken candidate must never affect serving
                log.error("shadow scoring failed for %d rows: %s", len(batch), exc)
            finally:
                for _ in batch:
                    self.queue.task_done()

    def record(self, batch: list[tuple[np.ndarray, float, str, str]], cand_scores: np.ndarray) -> None:
        """Update the comparison metrics for scored rows."""
        cand = self.candidate.version
        for (_, score, decision, active), cs in zip(batch, cand_scores):
            to = self.candidate.thresholds.decide(float(cs))
            SHADOW_SCORED.labels(active, cand).inc()
            shift = float(cs) - score
            SHADOW_SHIFT.labels(active, cand).observe(shift)
            (SHADOW_RISE if shift > 0 else SHADOW_FALL).labels(active, cand).inc(abs(shift))
            if to == decision:
                SHADOW_AGREED.labels(active, cand).inc()
            else:
                SHADOW_CHANGES.labels(active, cand, decision, to).inc()


def summarise(metrics_text: str) -> list[dict[str, Any]]:
    """Per (active, candidate) pair: scored, agreement, mean score shift and the decision-change matrix."""
    from prometheus_client.parser import text_string_to_metric_families

    pairs: dict[tuple[str, str], dict[str, Any]] = {}

    def pair(labels: dict[str, str]) -> dict[str, Any]:
        key = (labels["active"], labels["candidate"])
        return pairs.setdefault(key, {"active": key[0], "candidate": key[1], "scored": 0.0, "agreed": 0.0,
                                      "rise": 0.0, "fall": 0.0, "changes": {}})

    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            if s.name == "fraudstack_shadow_scored_total":
                pair(s.labels)["scored"] += s.value
            elif s.name == "fraudstack_shadow_agreed_total":
                pair(s.labels)["agreed"] += s.value
            elif s.name == "fraudstack_shadow_decision_changes_total":
                key = f"{s.labels['from_decision']}->{s.labels['to_decision']}"
                changes = pair(s.labels)["changes"]
                changes[key] = changes.get(key, 0.0) + s.value
            elif s.name == "fraudstack_shadow_score_rise_total":
                pair(s.labels)["rise"] += s.value
            elif s.name == "fraudstack_shadow_score_fall_total":
                pair(s.labels)["fall"] += s.value
    out = []
    for p in pairs.values():
        n = p["scored"]
        out.append({"active": p["active"], "candidate": p["candidate"], "scored": int(n),
                    "agreement": p["agreed"] / n if n else None,
                    "mean_score_shift": (p["rise"] - p["fall"]) / n if n else None,
                    "mean_abs_score_shift": (p["rise"] + p["fall"]) / n if n else None,
                    "decision_changes": {k: int(v) for k, v in sorted(p["changes"].items())}})
    return sorted(out, key=lambda r: (r["active"], r["candidate"]))


def _read_metrics(source: str) -> str:
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=10) as resp:  # noqa: S310 - operator-given URL
            return resp.read().decode()
    return Path(source).read_text()


def main(argv: list[str] | None = None) -> int:
    """``python -m app.shadow report --metrics http://host:8080/metrics`` (or a saved exposition file)."""
    parser = argparse.ArgumentParser(prog="python -m app.shadow", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="summarise the shadow metrics")
    rep.add_argument("--metrics", required=True, help="/metrics URL of the service, or a file holding its text")
    rep.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    try:
        rows = summarise(_read_metrics(args.metrics))
    except (OSError, ValueError) as exc:
        print(f"--metrics {args.metrics}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        import json

        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no shadow metrics found (is FRAUDSTACK_SHADOW_VERSION set on the service?)")
        return 1
    for r in rows:
        agreement = "n/a" if r["agreement"] is None else f"{r['agreement']:.2%}"
        shift = "n/a" if r["mean_score_shift"] is None else f"{r['mean_score_shift']:+.4f}"
        abs_shift = "n/a" if r["mean_abs_score_shift"] is None else f"{r['mean_abs_score_shift']:.4f}"
        print(f"active {r['active']} vs candidate {r['candidate']}: {r['scored']} scored, agreement {agreement}, "
              f"mean score shift {shift} (mean |shift| {abs_shift})")
        for change, n in r["decision_changes"].items():
            print(f"  {change}: {n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
