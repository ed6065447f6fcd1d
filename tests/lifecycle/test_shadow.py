"""Shadow scoring: same traffic, no effect on decisions, comparison metrics and the report."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from app import shadow
from app.model import ScoringModel

from ..service.helpers import txn
from .conftest import CLIENT_KEY
from .test_hot_swap import _with_client


def _sample(name: str, labels: dict[str, str]) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_candidate_shadows_traffic_without_changing_decisions(make_app: Any, tmp_path: Path) -> None:
    app = make_app(FRAUDSTACK_SHADOW_VERSION="v2")
    pair = {"active": "v1", "candidate": "v2"}
    change = dict(pair, from_decision="approve", to_decision="decline")
    before = (_sample("fraudstack_shadow_scored_total", pair), _sample("fraudstack_shadow_decision_changes_total", change),
              _sample("fraudstack_shadow_agreed_total", pair))

    async def body(client: httpx.AsyncClient) -> Any:
        responses = await asyncio.gather(*(client.post("/v1/score", json=txn(i), headers={"X-API-Key": CLIENT_KEY})
                                           for i in range(40)))
        batch = await client.post("/v1/score/batch", json={"transactions": [txn(100 + i) for i in range(10)]},
                                  headers={"X-API-Key": CLIENT_KEY})
        await app.state.model_manager.shadow.drain()
        return responses, batch, (await client.get("/metrics")).text

    responses, batch, text = asyncio.run(_with_client(app, body))
    assert {(r.json()["model_version"], r.json()["decision"]) for r in responses} == {("v1", "approve")}
    assert {r["decision"] for r in batch.json()["results"]} == {"approve"}
    assert _sample("fraudstack_shadow_scored_total", pair) - before[0] == 50
    assert _sample("fraudstack_shadow_decision_changes_total", change) - before[1] == 50
    assert _sample("fraudstack_shadow_agreed_total", pair) - before[2] == 0
    report = [r for r in shadow.summarise(text) if (r["active"], r["candidate"]) == ("v1", "v2")][0]
    assert report["scored"] >= 50 and report["agreement"] == 0.0
    assert report["decision_changes"]["approve->decline"] == report["scored"]
    assert 0.5 < report["mean_score_shift"] < 1.0  # v2 scores above 0.99, v1 below 0.5
    saved = tmp_path / "metrics.txt"
    saved.write_text(text)
    assert shadow.main(["report", "--metrics", str(saved)]) == 0


def test_full_queue_drops_and_counts_instead_of_waiting(model_dirs: dict[str, Path]) -> None:
    model = ScoringModel(model_dirs["v2"])
    model.load()
    before = _sample("fraudstack_shadow_dropped_total", {})

    async def offer() -> list[bool]:
        scorer = shadow.ShadowScorer(model, queue_size=2)  # not started: nothing drains the queue
        row = model.reference.copy()
        return [scorer.offer(row, 0.1, "approve", "v1") for _ in range(5)]

    assert asyncio.run(offer()) == [True, True, False, False, False]
    assert _sample("fraudstack_shadow_dropped_total", {}) - before == 3


def test_summarise_exact_numbers() -> None:
    text = "\n".join([
        '# TYPE fraudstack_shadow_scored_total counter',
        'fraudstack_shadow_scored_total{active="a",candidate="b"} 10.0',
        '# TYPE fraudstack_shadow_agreed_total counter',
        'fraudstack_shadow_agreed_total{active="a",candidate="b"} 8.0',
        '# TYPE fraudstack_shadow_decision_changes_total counter',
        'fraudstack_shadow_decision_changes_total{active="a",candidate="b",from_decision="approve",to_decision="review"} 2.0',
        '# TYPE fraudstack_shadow_score_rise_total counter',
        'fraudstack_shadow_score_rise_total{active="a",candidate="b"} 0.75',
        '# TYPE fraudstack_shadow_score_fall_total counter',
        'fraudstack_shadow_score_fall_total{active="a",candidate="b"} 0.25', ""])
    assert shadow.summarise(text) == [{"active": "a", "candidate": "b", "scored": 10, "agreement": 0.8,
                                       "mean_score_shift": 0.05, "mean_abs_score_shift": 0.1, "decision_changes": {"approve->review": 2}}]
