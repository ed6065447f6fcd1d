"""Narratives for analysts on ``review`` decisions: Amazon Bedrock, or a template.

Only reason codes reach Bedrock: feature names, their impacts and coarse value
bands (never identifiers, amounts in clear, cards, devices or IPs). Calls have a
timeout and a circuit breaker; whenever Bedrock is not configured, open, slow or
failing, the template narrative is returned instead. ``approve``/``decline``
decisions never call this module.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, NamedTuple

log = logging.getLogger("fraudstack.explain")

_SYSTEM = ("You write one short paragraph for a fraud analyst reviewing a card transaction. Use only the reason "
           "codes given. Do not invent facts, identifiers or amounts. Suggest what to check.")


class ReasonCode(NamedTuple):
    """A redacted reason: the feature, its impact on the score, and a coarse value band.

    A named tuple rather than a frozen dataclass: every review decision builds a few,
    and a tuple is built several times faster (no ``object.__setattr__`` per field).
    """

    feature: str
    impact: float
    band: str


def redact(reasons: list[dict[str, Any]]) -> list[ReasonCode]:
    """Turn reasons into codes safe to send out: values become bands, nothing else survives."""
    out = []
    for r in reasons:
        v = float(r["value"])
        band = "zero" if v == 0 else "low" if abs(v) < 1 else "medium" if abs(v) < 10 else "high"
        out.append(ReasonCode(str(r["feature"]), round(float(r["impact"]), 3), band))
    return out


def template_narrative(codes: list[ReasonCode], score: float) -> str:
    """Deterministic narrative from reason codes (the fallback)."""
    if not codes:
        return f"Score {score:.2f} is in the review band but no single feature stands out; review the full transaction."
    parts = [f"{c.feature.replace('_', ' ')} ({c.band}, +{c.impact:.2f})" for c in codes]
    return (f"Score {score:.2f} is in the review band. The largest contributions come from "
            + "; ".join(parts) + ". Check these against the customer's usual behaviour before approving.")


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; lets one trial call through after ``cooldown`` seconds."""

    def __init__(self, threshold: int = 3, cooldown: float = 30.0) -> None:
        self.threshold, self.cooldown = threshold, cooldown
        self.failures = 0
        self.opened_at: float | None = None
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        """closed, open or half-open."""
        if self.opened_at is None:
            return "closed"
        return "half-open" if time.monotonic() - self.opened_at >= self.cooldown else "open"

    def allow(self) -> bool:
        """Whether a call may go out now."""
        with self._lock:
            state = self.state
            if state == "half-open":
                self.opened_at = time.monotonic()  # one trial at a time
                return True
            return state == "closed"

    def success(self) -> None:
        """Close the breaker."""
        with self._lock:
            self.failures, self.opened_at = 0, None

    def failure(self) -> None:
        """Count a failure; open at the threshold."""
        with self._lock:
            self.failures += 1
            if self.failures >= self.threshold:
                self.opened_at = time.monotonic()


class Explainer:
    """Bedrock Converse narratives with timeout, breaker and template fallback (blocking: run in a thread)."""

    def __init__(self, model_id: str | None = None, client: Any = None, breaker: CircuitBreaker | None = None,
                 max_tokens: int = 200) -> None:
        self.model_id = model_id
        self.client = client
        self.breaker = breaker or CircuitBreaker()
        self.max_tokens = max_tokens

    @classmethod
    def from_settings(cls, region: str | None, model_id: str | None, timeout: float) -> "Explainer":
        """Build the Bedrock client when configured; a template-only explainer otherwise."""
        if not (region and model_id):
            return cls()
        import boto3
        from botocore.config import Config

        config = Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1, "mode": "standard"})
        return cls(model_id=model_id, client=boto3.client("bedrock-runtime", region_name=region, config=config))

    def narrative(self, reasons: list[dict[str, Any]], score: float) -> tuple[str, str]:
        """(text, source) where source is ``bedrock`` or ``template``."""
        codes = redact(reasons)
        if self.client is None or not self.breaker.allow():
            return template_narrative(codes, score), "template"
        prompt = "Fraud score band: review. Reason codes (feature, value band, impact on score):\n" + "\n".join(
            f"- {c.feature}: {c.band}, +{c.impact}" for c in codes) if codes else "No dominant reason codes."
        try:
            response = self.client.converse(
                modelId=self.model_id,
                system=[{"text": _SYSTEM}],
                messages=[{"role": "user", "content": [{"text": prompt}]}],
                inferenceConfig={"maxTokens": self.max_tokens, "temperature": 0.2},
            )
            text = "".join(part.get("text", "") for part in response["output"]["message"]["content"]).strip()
            if not text:
                raise ValueError("empty Bedrock response")
        except Exception as exc:
            self.breaker.failure()
            log.warning("Bedrock narrative failed (%s); template used", type(exc).__name__)
            return template_narrative(codes, score), "template"
        self.breaker.success()
        return text, "bedrock"
