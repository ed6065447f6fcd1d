"""Model monitoring: score and feature drift (PSI), decision rates, and precision/recall
of the decline and review bands from the feedback labels.

Drift: model.json's ``drift_reference`` holds, for the score and the top features,
quantile bin edges and the share of the training reference period in each bin. The
service counts its own scores and feature values into the same bins and, every
``window`` scores, publishes the population stability index

    PSI = sum_i (a_i - e_i) * ln(a_i / e_i)

(shares floored at ``EPS`` so an empty bin does not give infinity) as the Prometheus
gauge ``fraudstack_model_psi{subject}`` and as CloudWatch embedded-metric-format
(EMF) lines ``ScorePSI`` / ``FeaturePSIMax`` in namespace ``fraudstack``, which the
``model-score-psi`` / ``model-feature-psi`` alarms watch. The scoring path only
appends the row to a buffer; binning happens in batches.

Quality: ``quality(conn, schema, since, until)`` joins each decision with the latest
label reported for its transaction (``/v1/feedback``) and returns precision and recall
of the decline band (decision = decline) and the review band (review or decline).
``python -m app.drift quality`` prints them and the EMF line for a CronJob;
``QualityMonitor`` does the same periodically inside the service.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
from prometheus_client import Gauge

log = logging.getLogger("fraudstack.drift")
emf_log = logging.getLogger("fraudstack.emf")

EPS = 1e-4
NAMESPACE = "fraudstack"
FRAUD_OUTCOMES = ("fraud", "chargeback")

PSI = Gauge("fraudstack_model_psi", "PSI against the training reference over the last completed window",
            ["version", "subject"], multiprocess_mode="max")
WINDOW_DECISIONS = Gauge("fraudstack_model_window_decision_rate", "Share of each decision in the last completed window",
                         ["version", "decision"], multiprocess_mode="max")
QUALITY = Gauge("fraudstack_model_quality", "Precision/recall of a band from feedback labels",
                ["band", "measure"], multiprocess_mode="max")
LABELLED = Gauge("fraudstack_model_labelled_decisions", "Decisions with a label in the quality window",
                 multiprocess_mode="max")


def psi(expected: Sequence[float], actual_counts: Sequence[float]) -> float:
    """PSI of observed bin counts against expected bin shares (both over the same bins)."""
    e = np.clip(np.asarray(expected, dtype=np.float64), EPS, None)
    counts = np.asarray(actual_counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0 or len(e) != len(counts):
        raise ValueError(f"psi needs {len(e)} non-empty bin counts, got {len(counts)} summing to {total}")
    a = np.clip(counts / total, EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


def bin_counts(edges: Sequence[float], values: np.ndarray) -> np.ndarray:
    """Counts per reference bin; values outside the reference range fall in the end bins
    (as in ``app.training.export.histogram_reference``)."""
    inner = np.asarray(edges[1:-1], dtype=np.float64)
    return np.bincount(np.searchsorted(inner, np.asarray(values, dtype=np.float64), side="right"),
                       minlength=len(edges) - 1)[: len(edges) - 1]


def emf_record(metrics: Mapping[str, float], dimensions: Mapping[str, str], unit: str = "None",
               timestamp_ms: int | None = None) -> dict[str, Any]:
    """One CloudWatch embedded-metric-format document (namespace ``fraudstack``)."""
    return {
        "_aws": {"Timestamp": timestamp_ms if timestamp_ms is not None else int(time.time() * 1000),
                 "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [sorted(dimensions)],
                                        "Metrics": [{"Name": k, "Unit": unit} for k in metrics]}]},
        **dimensions, **{k: float(v) for k, v in metrics.items()},
    }


def emit_emf(metrics: Mapping[str, float], dimensions: Mapping[str, str]) -> dict[str, Any]:
    """Log one EMF line (the CloudWatch agent / Fluent Bit of Container Insights ships stdout)."""
    doc = emf_record(metrics, dimensions)
    emf_log.info(json.dumps(doc, separators=(",", ":")))
    return doc


@dataclass(frozen=True)
class Reference:
    """Bins of one monitored subject (the score or a feature)."""

    subject: str
    column: int | None  # feature column in the input vector; None for the score
    edges: tuple[float, ...]
    shares: tuple[float, ...]


def references(meta: Mapping[str, Any], features: Sequence[str]) -> list[Reference]:
    """The monitored subjects of a model.json; [] when it has no ``drift_reference``."""
    ref = meta.get("drift_reference") or {}
    out: list[Reference] = []
    score = ref.get("score") or {}
    if len(score.get("edges") or []) >= 2:
        out.append(Reference("score", None, tuple(score["edges"]), tuple(score["shares"])))
    for name, h in (ref.get("features") or {}).items():
        if name in features and len(h.get("edges") or []) >= 2:
            out.append(Reference(name, list(features).index(name), tuple(h["edges"]), tuple(h["shares"])))
    return out


class DriftMonitor:
    """Counts served scores and features into the reference bins; publishes PSI per window."""

    def __init__(self, version: str, refs: list[Reference], thresholds: Any, window: int = 5000,
                 dimensions: Mapping[str, str] | None = None, flush_rows: int = 256) -> None:
        self.version, self.refs, self.thresholds, self.window = version, refs, thresholds, window
        self.dimensions = dict(dimensions or {})
        self.flush_rows = min(flush_rows, window)  # a small window still closes on time
        self._rows: list[np.ndarray] = []
        self._scores: list[float] = []
        self._reset()
        self.last: dict[str, float] = {}

    @classmethod
    def for_model(cls, model: Any, **kwargs: Any) -> "DriftMonitor":
        """A monitor for a loaded ``ScoringModel`` (its model.json reference)."""
        return cls(model.version, references(model.metadata, model.features), model.thresholds, **kwargs)

    def _reset(self) -> None:
        self.counts = {r.subject: np.zeros(len(r.edges) - 1, dtype=np.int64) for r in self.refs}
        self.decisions = {"approve": 0, "review": 0, "decline": 0}
        self.n = 0

    def offer(self, x: np.ndarray, score: float, decision: str, active_version: str) -> None:
        """Hot path: remember the row; binning happens every ``flush_rows`` rows.

        Rows of another version (requests that finished on the model just swapped out)
        are not this model's population and are skipped.
        """
        if active_version != self.version:
            return
        self._rows.append(x)
        self._scores.append(score)
        if len(self._rows) >= self.flush_rows:
            self.flush()

    def offer_many(self, x: np.ndarray, scores: Sequence[float], decisions: Sequence[str], active_version: str) -> None:
        """A batch's rows."""
        if active_version != self.version:
            return
        self._rows.extend(x)
        self._scores.extend(float(s) for s in scores)
        if len(self._rows) >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        """Bin the buffered rows; close windows that filled up."""
        while self._rows:
            take = min(len(self._rows), self.window - self.n)
            rows, scores = self._rows[:take], np.asarray(self._scores[:take], dtype=np.float64)
            self._rows, self._scores = self._rows[take:], self._scores[take:]
            x = np.stack(rows)
            for r in self.refs:
                values = scores if r.column is None else x[:, r.column]
                self.counts[r.subject] += bin_counts(r.edges, values)
            th = self.thresholds
            decline = int(np.sum(scores >= th.decline))
            review = int(np.sum(scores >= th.review)) - decline
            self.decisions["decline"] += decline
            self.decisions["review"] += review
            self.decisions["approve"] += len(scores) - decline - review
            self.n += len(scores)
            if self.n >= self.window:
                self.publish()
                self._reset()

    def current(self) -> dict[str, float]:
        """PSI per subject over what the open window holds (no publishing)."""
        return {r.subject: psi(r.shares, self.counts[r.subject]) for r in self.refs if self.counts[r.subject].sum()}

    def publish(self) -> dict[str, float]:
        """Set the gauges and emit the EMF line for the current window; returns the values."""
        values = self.current()
        for subject, v in values.items():
            PSI.labels(self.version, subject).set(v)
        n = max(self.n, 1)
        rates = {d: c / n for d, c in self.decisions.items()}
        for d, rate in rates.items():
            WINDOW_DECISIONS.labels(self.version, d).set(rate)
        features = [v for k, v in values.items() if k != "score"]
        metrics = {"DeclineRate": rates["decline"], "ReviewRate": rates["review"]}
        if "score" in values:
            metrics["ScorePSI"] = values["score"]
        if features:
            metrics["FeaturePSIMax"] = max(features)
        if self.dimensions:
            emit_emf(metrics, self.dimensions)
        self.last = values
        return values


# --------------------------------------------------------------------------- quality

_QUALITY_SQL = """
WITH d AS (
    SELECT DISTINCT ON (transaction_id) transaction_id, decision
    FROM {schema}.decisions
    WHERE received_at >= %(since)s AND received_at < %(until)s
    ORDER BY transaction_id, received_at DESC
), f AS (
    SELECT DISTINCT ON (transaction_id) transaction_id, outcome
    FROM {schema}.feedback
    WHERE reported_at < %(until)s AND received_at < %(until)s
    ORDER BY transaction_id, reported_at DESC, received_at DESC, id DESC
)
SELECT d.decision, f.outcome IN ('fraud', 'chargeback') AS is_fraud, count(*)
FROM d JOIN f USING (transaction_id)
GROUP BY 1, 2
"""


def quality_from_counts(counts: Mapping[tuple[str, bool], int]) -> dict[str, float | int | None]:
    """Precision/recall of the decline band and the review (review-or-decline) band.

    ``counts[(decision, is_fraud)]``; a measure with an empty denominator is None.
    """
    def c(decisions: Sequence[str], fraud: bool | None) -> int:
        return sum(n for (d, f), n in counts.items() if d in decisions and (fraud is None or f == fraud))

    fraud_total = c(("approve", "review", "decline"), True)
    out: dict[str, float | int | None] = {"labelled": c(("approve", "review", "decline"), None), "fraud": fraud_total}
    for band, decisions in (("decline", ("decline",)), ("review", ("review", "decline"))):
        flagged, caught = c(decisions, None), c(decisions, True)
        out[f"{band}_precision"] = caught / flagged if flagged else None
        out[f"{band}_recall"] = caught / fraud_total if fraud_total else None
    return out


def quality(conn: Any, schema: str, since: datetime, until: datetime) -> dict[str, float | int | None]:
    """Precision/recall from the audit trail: decisions in [since, until) with labels reported before ``until``."""
    from psycopg import sql

    query = sql.SQL(_QUALITY_SQL).format(schema=sql.Identifier(schema))
    rows = conn.execute(query, {"since": since, "until": until}).fetchall()
    return quality_from_counts({(d, bool(f)): int(n) for d, f, n in rows})


_QUALITY_METRICS = {"decline_precision": "DeclinePrecision", "decline_recall": "DeclineRecall",
                    "review_precision": "ReviewPrecision", "review_recall": "ReviewRecall"}


def publish_quality(values: Mapping[str, Any], dimensions: Mapping[str, str] | None) -> dict[str, float]:
    """Set the quality gauges; emit the measures that are defined as one EMF line."""
    LABELLED.set(values.get("labelled") or 0)
    metrics = {}
    for key, name in _QUALITY_METRICS.items():
        v = values.get(key)
        if v is not None:
            band, measure = key.split("_")
            QUALITY.labels(band, measure).set(v)
            metrics[name] = float(v)
    if metrics and dimensions:
        emit_emf(metrics, dimensions)
    return metrics


class QualityMonitor:
    """Recomputes precision/recall from PostgreSQL every ``interval`` seconds (in a thread)."""

    def __init__(self, url: str, schema: str, days: int, interval: float, dimensions: Mapping[str, str]) -> None:
        self.url, self.schema, self.days, self.interval, self.dimensions = url, schema, days, interval, dict(dimensions)
        self._task: asyncio.Task[None] | None = None

    def run_once(self) -> dict[str, Any]:
        """One computation (blocking)."""
        import psycopg

        until = datetime.now(timezone.utc)
        with psycopg.connect(self.url, connect_timeout=5, autocommit=True) as conn:
            try:
                values = quality(conn, self.schema, until - timedelta(days=self.days), until)
            except psycopg.errors.UndefinedTable:
                # A new schema: the audit writer creates its tables with its first batch, and
                # the first run here comes at start-up. Nothing to measure yet; not a fault.
                log.info("quality metrics: no audit tables in schema %s yet", self.schema)
                return {}
        publish_quality(values, self.dimensions)
        return values

    def start(self) -> None:
        """Run in the background on the current loop."""
        async def loop() -> None:
            while True:
                try:
                    await asyncio.to_thread(self.run_once)
                except Exception as exc:  # the audit database may be down: the audit spool handles that
                    log.warning("quality metrics not computed: %s", exc)
                await asyncio.sleep(self.interval)
        self._task = asyncio.get_running_loop().create_task(loop())

    async def stop(self) -> None:
        """Stop the background loop."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass


def main(argv: list[str] | None = None) -> int:
    """``python -m app.drift quality --database-url URL [--schema S] [--days N] [--emf]``."""
    parser = argparse.ArgumentParser(prog="python -m app.drift", description="Model quality from the audit trail")
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quality", help="precision/recall of the decline and review bands from feedback labels")
    q.add_argument("--database-url", required=True)
    q.add_argument("--schema", default="fraudstack")
    q.add_argument("--days", type=int, default=30, help="decisions of the last N days (default 30)")
    q.add_argument("--environment", default=None, help="with --emf: the Environment dimension")
    q.add_argument("--service", default="scoring-api", help="with --emf: the Service dimension")
    q.add_argument("--emf", action="store_true", help="also print the CloudWatch EMF line")
    args = parser.parse_args(argv)
    if args.days < 1:
        print("--days: must be at least 1", file=sys.stderr)
        return 2
    if args.emf and not args.environment:
        print("--environment: required with --emf (the alarms' Environment dimension)", file=sys.stderr)
        return 2
    import psycopg

    until = datetime.now(timezone.utc)
    try:
        with psycopg.connect(args.database_url, connect_timeout=5, autocommit=True) as conn:
            values = quality(conn, args.schema, until - timedelta(days=args.days), until)
    except psycopg.Error as exc:
        print(f"--database-url: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return 2
    print(json.dumps(values, indent=2))
    if args.emf:
        metrics = {name: float(values[k]) for k, name in _QUALITY_METRICS.items() if values.get(k) is not None}
        if metrics:
            print(json.dumps(emf_record(metrics, {"Environment": args.environment, "Service": args.service})))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
