"""Fuzzing fixtures: one service process for the session (in-process velocity store, SQLite audit).

The process is started with the drills' ``ServiceProcess`` helper; the tests fuzz every
route of the OpenAPI document the service publishes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.drills.conftest import ServiceProcess, wait_until
from tests.service.conftest import TEST_KEY, model_dir  # noqa: F401  (fixture re-exported)


@pytest.fixture(scope="session")
def fuzz_service(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[ServiceProcess]:  # noqa: F811
    """The service as a real process on a free port, with a small body limit so 413 is reachable."""
    work = tmp_path_factory.mktemp("fuzz")
    svc = ServiceProcess({"FRAUDSTACK_API_KEYS": TEST_KEY, "FRAUDSTACK_DATA_DIR": str(work / "data"),
                          "FRAUDSTACK_MODEL_DIR": str(model_dir), "FRAUDSTACK_MAX_BATCH_SIZE": "50",
                          "FRAUDSTACK_RATE_LIMIT_PER_SECOND": "0"}, work)
    svc.wait_listening()
    assert wait_until(lambda: httpx.get(svc.url + "/health/ready").status_code == 200, 30)
    yield svc
    code = svc.terminate()
    assert code == 0, svc.output()
    # No request, however malformed, may leave a stack trace in the service's log either.
    assert "Traceback" not in svc.output(), svc.output()[-4000:]
