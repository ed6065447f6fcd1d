"""The event-loop lag histogram: a stall of the loop shows in fraudstack_event_loop_lag_seconds."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import REGISTRY

from app import metrics

NAME = "fraudstack_event_loop_lag_seconds"


def _sample(suffix: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(NAME + suffix, labels or {}) or 0.0


def test_a_stall_is_observed_and_a_quiet_loop_is_not() -> None:
    async def main() -> None:
        task = asyncio.create_task(metrics.watch_loop_lag(period=0.01))
        await asyncio.sleep(0.1)  # quiet: wake-ups on time
        quiet_count, quiet_slow = _sample("_count"), _sample("_count") - _sample("_bucket", {"le": "0.025"})
        time.sleep(0.06)  # the loop stalls
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert quiet_count >= 3
        stalled = (_sample("_count") - _sample("_bucket", {"le": "0.025"})) - quiet_slow
        assert stalled >= 1  # the wake-up that the stall delayed by > 25 ms
        assert task.cancelled()

    before_slow = _sample("_count") - _sample("_bucket", {"le": "0.025"})
    asyncio.run(main())
    assert _sample("_count") - _sample("_bucket", {"le": "0.025"}) >= before_slow + 1
