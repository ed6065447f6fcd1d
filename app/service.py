"""The running service: dependencies wired once at start-up, and the scoring path.

Routes in ``app.main`` stay thin and call into ``Service``. The scoring path:
velocity features (one Redis round trip, or degraded defaults) -> feature vector
(``app.features.vectorize``, the one definition shared with training) -> ONNX in a
worker thread (scores and reasons in one run) -> decision -> audit record queued.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

import numpy as np

from app import metrics
from app.audit import AuditWriter, PostgresSink, SqliteSink, Spool
from app.errors import InvalidRequest, NotReady
from app.explain import Explainer, redact, template_narrative
from app.keys import key_digests
from app.risk import risk_score, risk_score_one
from app.model import InferenceBatcher, InferenceThread, ModelLoadError, ScoringModel
from app.schemas import Feedback, Transaction
from app.security import KeyRing, NonceStore, RateLimiter, RedisGuard, SignatureVerifier, fingerprint
from app.settings import Settings

log = logging.getLogger("fraudstack.service")


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


# Metric children bound once: ``labels()`` takes a lock and builds a key on every call.
_DECIDED = {d: metrics.DECISIONS.labels(d) for d in ("approve", "review", "decline")}
_NARRATED = {s: metrics.NARRATIVES.labels(s) for s in ("template", "bedrock")}


def _narrate_template(result: dict[str, Any]) -> None:
    """The template narrative of a review decision (no I/O: built on the spot)."""
    result["narrative"] = template_narrative(redact(result["reasons"]), result["score"])
    result["narrative_source"] = "template"
    _NARRATED["template"].inc()


class Velocity:
    """Velocity features with a fallback: any store failure scores degraded and backs off."""

    def __init__(self, store: Any, guard: RedisGuard | None) -> None:
        self.store, self.guard = store, guard
        self._next_log = 0.0

    async def observe(self, txn: dict[str, Any]) -> tuple[dict[str, float], bool]:
        """(features, degraded). Degraded returns ``{}`` so ``vectorize`` applies its defaults."""
        if self.guard is not None and not self.guard.usable:
            metrics.DEGRADED.inc()
            return {}, True
        try:
            features = await self.store.observe(txn)
        except Exception as exc:  # VelocityUnavailable, redis errors, timeouts: all mean "score without"
            metrics.DEGRADED.inc()
            if self.guard is not None:
                self.guard.failed(exc)  # counts the error too
            else:
                metrics.VELOCITY_ERRORS.inc()
            now = time.monotonic()
            if now >= self._next_log:  # at most one line a second: an outage must not flood the logs
                self._next_log = now + 1.0
                log.warning("velocity store failed (%s); scoring degraded", type(exc).__name__)
            return {}, True
        if self.guard is not None:
            self.guard.succeeded()
        return features, False


class Service:
    """Everything a request needs, created once per worker process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model = ScoringModel(settings.model_dir or settings.data_dir / "demo-model", settings.inference_threads,
                                  settings.threshold_review, settings.threshold_decline)
        self.model_error: str | None = "model not loaded yet"
        self.transaction_error: str | None = None
        self.redis: Any = None
        self.redis_bulk: Any = None
        self.velocity_client: Any = None
        self.guard = RedisGuard(None, settings.redis_retry_seconds)
        self.velocity: Velocity | None = None
        self.audit: AuditWriter | None = None
        self.keyring = KeyRing([])
        self.limiter: RateLimiter | None = None
        self.verifier: SignatureVerifier | None = None
        self.explainer = Explainer()
        # ONNX Runtime releases the GIL: inference in these threads leaves the event loop free.
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="onnx")
        self._slow_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="bedrock")
        # Single scores: their own thread with a lighter hand-off (InferenceThread).
        self._scorer = InferenceThread()
        self._names: list[str] = []
        self._batcher = InferenceBatcher(self.model, self._scorer, settings.reasons_top_k)
        # Off-path consumers of every score (app.lifecycle: drift monitor, shadow scorer);
        # each offer() is a bounded, non-blocking append.
        self.observers: list[Any] = []

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Load the model, connect dependencies, start the audit writer."""
        s = self.settings
        self.keyring = KeyRing(await asyncio.to_thread(key_digests, s))
        await asyncio.to_thread(self._load_model)
        from app.velocity import MemoryVelocityStore, RedisVelocityStore

        if s.redis_url:
            import redis.asyncio as aioredis

            from app.resp import RespClient

            timeout = s.redis_timeout_ms / 1000.0
            # redis-py for the occasional calls (rate-limit leases, nonces, health); the
            # velocity script, once per score, on app.resp's lean pipelined connection.
            self.redis = aioredis.from_url(s.redis_url, socket_timeout=timeout, socket_connect_timeout=max(timeout, 0.2),
                                           health_check_interval=0, retry_on_timeout=False)
            self.velocity_client = RespClient(s.redis_url, timeout)
            # Batches pipeline up to FRAUDSTACK_MAX_BATCH_SIZE scripts: their replies legitimately
            # take longer than one score's timeout, so they get a connection of their own.
            self.redis_bulk = RespClient(s.redis_url, self._bulk_timeout(), connect_timeout=max(timeout, 0.2))
            self.guard = RedisGuard(self.redis, s.redis_retry_seconds)
            self.velocity = Velocity(RedisVelocityStore(self.velocity_client, key_prefix=f"{s.redis_key_prefix}vel",
                                                        timeout=timeout, result_ttl=s.velocity_result_ttl_seconds), self.guard)
            try:
                await self.velocity.store.preload()
            except Exception as exc:  # Redis down at start-up: scores degrade and recover on their own
                log.warning("velocity scripts not preloaded (%s); loaded on first use", exc)
        else:
            self.velocity = Velocity(MemoryVelocityStore(), None)
        self.limiter = RateLimiter(self.guard, s.redis_key_prefix, s.rate_limit_per_second)
        if s.hmac_secret:
            self.verifier = SignatureVerifier(s.hmac_secret, s.hmac_window_seconds,
                                              NonceStore(self.guard, s.redis_key_prefix, s.hmac_window_seconds))
        sink: Any
        if s.database_url:
            sink = PostgresSink(s.database_url, s.database_schema)
        else:
            sink = await asyncio.to_thread(SqliteSink, s.data_dir / "audit.sqlite3")
        self.audit = AuditWriter(sink, Spool(s.data_dir / "spool"), s.audit_batch_size, s.audit_flush_ms, s.audit_retry_seconds)
        self.audit.start()
        self.explainer = Explainer.from_settings(s.bedrock_region, s.bedrock_model_id, s.bedrock_timeout_seconds)

    def _load_model(self) -> None:
        try:
            self.model.load()
        except ModelLoadError as exc:
            # Not ready with a clear reason, rather than a crash loop.
            self.model_error = str(exc)
            log.error("model not loaded: %s", exc)
            return
        self.model_error = None
        self._names = list(self.model.features)
        from app.features import FEATURE_NAMES

        if tuple(self._names) != tuple(FEATURE_NAMES):
            # A model trained on other columns (the pipeline's --csv mode) still serves raw
            # vectors through the Open Inference Protocol; transactions cannot be vectorised for it.
            self.transaction_error = ("model.json features are not app.features.FEATURE_NAMES: this model scores "
                                      f"raw feature vectors only (POST /v2/models/{self.settings.model_name}/infer)")
            log.warning(self.transaction_error)
        metrics.MODEL_INFO.labels(self.model.version, self.model.sha256[:12]).set(1)

    def swap_model(self, model: ScoringModel) -> None:
        """Serve ``model`` from now on (app.lifecycle verifies it first; an unloaded one is loaded by ``start``).

        Model and batcher change in one step on the event loop: a request holds the
        pair it started with, so it finishes on the old model with the old thresholds.
        """
        old = self.model
        self.model, self._batcher = model, InferenceBatcher(model, self._scorer, self.settings.reasons_top_k)
        if model.session is not None:
            self._names, self.model_error = list(model.features), None
            if old.session is not None:
                metrics.MODEL_INFO.remove(old.version, old.sha256[:12])
            metrics.MODEL_INFO.labels(model.version, model.sha256[:12]).set(1)

    async def stop(self) -> None:
        """Flush the audit trail, close connections, stop threads."""
        if self.audit is not None:
            await self.audit.stop()
        if self.redis is not None:
            await self.redis.aclose()
            await self.velocity_client.aclose()
            await self.redis_bulk.aclose()
        self._scorer.stop()
        self._pool.shutdown(wait=True)
        self._slow_pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ security
    async def authenticate(self, headers: Any, body: bytes) -> str:
        """Key id of the caller after key, signature and rate-limit checks."""
        key_id = self.keyring.identify(headers.get("x-api-key"))
        if self.verifier is not None:
            await self.verifier.verify(headers, body)
        if self.limiter is not None:
            await self.limiter.check(key_id)
        return key_id

    # ------------------------------------------------------------------ scoring
    def _ready_model(self, transactions: bool = True) -> ScoringModel:
        if self.model_error is not None:
            raise NotReady(f"model not ready: {self.model_error}", field="model")
        if transactions and self.transaction_error is not None:
            raise NotReady(self.transaction_error, field="model")
        return self.model

    def _result(self, txn: Transaction, row: list[float], score: float, risk: int, decision: str,
                reasons: list[tuple[int, float]], degraded: bool, timing: dict[str, float],
                model: ScoringModel | None = None) -> dict[str, Any]:
        model = model or self.model
        names = model.features
        return {
            "transaction_id": txn.transaction_id,
            "score": round(score, 6),
            "risk_score": risk,
            "decision": decision,
            "reasons": [{"feature": names[j], "value": round(row[j], 4), "impact": round(imp, 6)} for j, imp in reasons],
            "model_version": model.version,
            "degraded": degraded,
            "narrative": None,
            "narrative_source": None,
            "timing_ms": timing,
        }

    def _audit(self, result: dict[str, Any], row: list[float], request_hash: str, key_id: str, latency_ms: float,
               received_at: str) -> None:
        assert self.audit is not None
        self.audit.submit_decision({
            "transaction_id": result["transaction_id"], "request_hash": request_hash, "received_at": received_at,
            "api_key_id": key_id, "model_version": result["model_version"], "score": result["score"],
            "risk_score": result["risk_score"], "decision": result["decision"], "degraded": result["degraded"],
            "reasons": result["reasons"], "features": row, "latency_ms": round(latency_ms, 3),
        })

    async def score(self, txn: Transaction, body: bytes, key_id: str, narrative: bool = False) -> dict[str, Any]:
        """Score one transaction and queue its audit record."""
        t0 = time.perf_counter()
        received_at = _now_iso()
        model = self._ready_model()
        batcher = self._batcher  # taken with the model, before any await: one consistent pair
        raw = txn.raw()
        assert self.velocity is not None
        velocity, degraded = await self.velocity.observe(raw)
        t1 = time.perf_counter()
        from app.features import vectorize

        x = vectorize(raw, velocity)
        score, reasons = await batcher.score(x)
        t2 = time.perf_counter()
        decision = model.thresholds.decide(score)
        _DECIDED[decision].inc()
        metrics.SCORES.observe(score)
        for observer in self.observers:
            observer.offer(x, score, decision, model.version)
        row = x.tolist()
        result = self._result(txn, row, score, risk_score_one(score), decision, reasons, degraded,
                              {"velocity": round((t1 - t0) * 1000, 3), "model": round((t2 - t1) * 1000, 3)}, model)
        if result["decision"] == "review":
            if narrative and self.explainer.client is not None:
                await self._narrate_bedrock(result)
            else:
                _narrate_template(result)
        total = (time.perf_counter() - t0) * 1000
        result["timing_ms"]["total"] = round(total, 3)
        self._audit(result, row, hashlib.sha256(body).hexdigest(), key_id, total, received_at)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("scored %s: %s %.4f card=%s device=%s ip=%s degraded=%s", txn.transaction_id, result["decision"], score,
                      fingerprint(txn.card_token), fingerprint(txn.device_id), fingerprint(txn.ip_address), degraded)
        return result

    async def _narrate_bedrock(self, result: dict[str, Any]) -> None:
        """A review the caller waits on: Bedrock's narrative, bounded by its timeout, else the template."""
        loop = asyncio.get_running_loop()
        try:
            text, source = await asyncio.wait_for(
                loop.run_in_executor(self._slow_pool, self.explainer.narrative, result["reasons"], result["score"]),
                timeout=self.settings.bedrock_timeout_seconds + 0.5)
        except TimeoutError:
            self.explainer.breaker.failure()
            _narrate_template(result)
            return
        _NARRATED[source].inc()
        result["narrative"], result["narrative_source"] = text, source

    async def score_batch(self, txns: list[Transaction], body: bytes, key_id: str, with_reasons: bool = True) -> dict[str, Any]:
        """Score many transactions as one model batch (velocity observed in request order)."""
        t0 = time.perf_counter()
        received_at = _now_iso()
        model = self._ready_model()
        if len(txns) > self.settings.max_batch_size:
            raise InvalidRequest(f"transactions: at most {self.settings.max_batch_size} per batch (got {len(txns)})",
                                 field="transactions")
        from app.features import raw_features, vectorize_many

        raws = [t.raw() for t in txns]
        # The velocity scripts go out first; the raw features are computed while the
        # velocity store works on them (a first pass of the event loop sends them).
        observing = asyncio.ensure_future(self._observe_many(raws))
        try:
            await asyncio.sleep(0)
            raw = [raw_features(r) for r in raws]
        except BaseException:
            observing.cancel()
            raise
        velocity, degraded = await observing
        x = vectorize_many(raws, velocity, raw)
        t1 = time.perf_counter()
        loop = asyncio.get_running_loop()
        top_k = self.settings.reasons_top_k if with_reasons else 0
        scores, reasons = await loop.run_in_executor(self._pool, model.score_with_reasons, x, top_k)
        t2 = time.perf_counter()
        th = model.thresholds
        decisions = np.where(scores >= th.decline, "decline", np.where(scores >= th.review, "review", "approve")).tolist()
        risks = risk_score(scores).tolist()
        rows = x.tolist()
        score_list = scores.tolist()
        base_hash = hashlib.sha256(body).hexdigest()
        per_item = (t2 - t0) * 1000 / len(txns)
        results = []
        for i, txn in enumerate(txns):
            r = self._result(txn, rows[i], score_list[i], risks[i], decisions[i], reasons[i], degraded[i], {}, model)
            if decisions[i] == "review":
                _narrate_template(r)
            self._audit(r, rows[i], f"{base_hash}:{i}", key_id, per_item, received_at)
            results.append(r)
        for outcome in ("approve", "review", "decline"):
            n = decisions.count(outcome)
            if n:
                _DECIDED[outcome].inc(n)
        for sc in score_list:
            metrics.SCORES.observe(sc)
        for observer in self.observers:
            observer.offer_many(x, scores, decisions, model.version)
        total = (time.perf_counter() - t0) * 1000
        return {"results": results, "model_version": model.version,
                "timing_ms": {"features": round((t1 - t0) * 1000, 3), "model": round((t2 - t1) * 1000, 3),
                              "total": round(total, 3)}}

    async def _observe_many(self, raws: list[dict[str, Any]]) -> tuple[np.ndarray, list[bool]]:
        """The batch's velocity features (one row per transaction, ``VELOCITY_FEATURES``
        order) and which rows are degraded (the defaults, scored without history)."""
        from app.features import velocity_values

        assert self.velocity is not None
        store = self.velocity.store
        many = getattr(store, "observe_matrix", None)
        if many is not None and self.redis_bulk is not None:
            many = self._redis_observe_many
        if many is not None and (self.velocity.guard is None or self.velocity.guard.usable):
            try:
                return await many(raws), [False] * len(raws)
            except Exception as exc:
                if self.velocity.guard is not None:
                    self.velocity.guard.failed(exc)
                else:
                    metrics.VELOCITY_ERRORS.inc()
                log.warning("velocity store failed (%s); batch scored degraded", type(exc).__name__)
                metrics.DEGRADED.inc(len(raws))
                return np.array([velocity_values({})] * len(raws), dtype=np.float64), [True] * len(raws)
        observed = [await self.velocity.observe(raw) for raw in raws]
        return (np.array([velocity_values(v) for v, _ in observed], dtype=np.float64).reshape(len(raws), -1),
                [d for _, d in observed])

    def _bulk_timeout(self) -> float:
        """Timeout of a batch's pipelined velocity scripts: a tenth of the single timeout per transaction, at least 2 s."""
        return max(2.0, self.settings.redis_timeout_ms / 1000 * self.settings.max_batch_size / 10)

    async def _redis_observe_many(self, raws: list[dict[str, Any]]) -> np.ndarray:
        """All of a batch's velocity scripts in one pipelined round trip, in request order,
        on the bulk connection (its socket timeout fits a whole batch)."""
        store = self.velocity.store  # type: ignore[union-attr]
        return await store.observe_matrix(raws, client=self.redis_bulk, timeout=self._bulk_timeout())

    async def infer(self, matrix: np.ndarray) -> np.ndarray:
        """Raw probabilities for an already-built feature matrix (Open Inference Protocol)."""
        model = self._ready_model(transactions=False)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, model.probabilities, matrix)

    def feedback(self, fb: Feedback, body: bytes, key_id: str) -> None:
        """Queue a confirmed outcome for the audit store."""
        assert self.audit is not None
        received = _now_iso()
        self.audit.submit_feedback({
            "feedback_hash": hashlib.sha256(body).hexdigest(), "transaction_id": fb.transaction_id,
            "outcome": fb.outcome, "reported_at": fb.reported_at.isoformat() if fb.reported_at else received,
            "source": fb.source, "note": fb.note, "api_key_id": key_id, "received_at": received,
        })

    # ------------------------------------------------------------------ health
    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """(ready, details): ready means the model is loaded and its checksum verified."""
        redis_state = "in-process"
        if self.redis is not None:
            try:
                await asyncio.wait_for(self.redis.ping(), timeout=0.25)
                redis_state = "up"
            except Exception:
                redis_state = "down (scoring degraded)"
        audit = self.audit
        details: dict[str, Any] = {
            "model": {"loaded": self.model_error is None, "version": self.model.version,
                      "sha256": self.model.sha256 or None, "error": self.model_error,
                      "scores_transactions": self.model_error is None and self.transaction_error is None},
            "velocity_store": redis_state,
            "audit": {"sink": audit.sink.name if audit else None, "up": audit.sink_ok if audit else False,
                      "backlog": audit.backlog if audit else 0},
        }
        if audit is not None:
            metrics.AUDIT_BACKLOG.set(audit.backlog)
            metrics.AUDIT_SINK_UP.set(1 if audit.sink_ok else 0)
        return self.model_error is None, details
