"""Reasons: each row's score and its top impacts, computed from the model itself.

An impact is the model's score minus its score with one feature set to its
reference value; these tests recompute impacts directly and check that a row's
result depends on that row alone (not on the batch it came in).
"""

from __future__ import annotations

import numpy as np
import pytest

from app.features import offline_features
from app.model import ROW_BLOCK, ScoringModel, padded
from app.training.simulate import SimulationArgs, simulate


def record_runs(model: ScoringModel) -> list[np.ndarray]:
    """Every matrix ``model`` sends to its scoring session, in order (``del model.probabilities`` to stop)."""
    runs: list[np.ndarray] = []
    run = model.probabilities

    def spy(x: np.ndarray) -> np.ndarray:
        runs.append(x.copy())
        return run(x)

    model.probabilities = spy  # type: ignore[method-assign]
    return runs


# ---------------------------------------------------------------------------- demo model
@pytest.fixture(scope="module")
def demo_model(demo_dir) -> ScoringModel:
    model = ScoringModel(demo_dir[0])
    model.load()
    return model


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    """6,000 transactions of the simulator (3 % fraud, for more risky rows than the demo's 1 %)."""
    return offline_features(simulate(SimulationArgs(rows=6000, fraud_rate=0.03, days=9, seed=23)))


def test_reasons_are_the_models_own_top_impacts(demo_model, rows):
    """Recomputed one row at a time: impact_j = p(x) - p(x with x_j = r_j), top 3 positive, highest first."""
    top_k, ref = 3, demo_model.reference
    scores, reasons = demo_model.score_with_reasons(rows[:300], top_k)
    for i, x in enumerate(rows[:300]):
        cf = np.tile(x, (len(ref) + 1, 1))
        cf[np.arange(1, len(ref) + 1), np.arange(len(ref))] = ref
        p = demo_model.probabilities(padded(cf))[:len(ref) + 1, 1].astype(np.float64)
        impact = p[0] - p[1:]
        assert scores[i] == p[0]
        listed = [j for j, _ in reasons[i]]
        assert [v for _, v in reasons[i]] == [impact[j] for j in listed]
        assert all(v > 0 for _, v in reasons[i]) and listed == sorted(listed, key=lambda j: -impact[j])
        others = np.delete(impact, listed)
        floor = reasons[i][-1][1] if len(listed) == top_k else 0.0
        assert (others <= floor).all()  # nothing left out is larger (ties may go either way)


def test_single_rows_and_small_batches_equal_the_big_batch(demo_model, rows):
    """A transaction gets the same score and reasons alone, in a batch of 16 and of 1,000,
    with reasons or without: a row's result depends on that row alone."""
    batch = rows[:1000]
    scores, reasons = demo_model.score_with_reasons(batch, 3)
    plain = demo_model.score_with_reasons(batch, 0)[0]
    assert plain.tobytes() == scores.tobytes()
    for i in range(0, 400):
        s, r = demo_model.score_with_reasons(batch[i:i + 1], 3)
        assert (s[0], r[0]) == (scores[i], reasons[i])
    for start in range(400, 1000, 16):
        s, r = demo_model.score_with_reasons(batch[start:start + 16], 3)
        assert s.tobytes() == scores[start:start + 16].tobytes() and r == reasons[start:start + 16]


def test_every_run_is_padded_to_whole_blocks(demo_model, rows):
    runs = record_runs(demo_model)
    try:
        for n in (1, 3, 16, 17, 250):
            demo_model.score_with_reasons(rows[:n], 3)
            demo_model.score_with_reasons(rows[:n], 0)
    finally:
        del demo_model.probabilities
    assert len(runs) == 10 and [len(x) % ROW_BLOCK for x in runs] == [0] * 10
    np.testing.assert_array_equal(runs[3][:3], rows[:3])  # n=3 without reasons: the rows, then copies of the first
    np.testing.assert_array_equal(runs[3][3:], np.tile(rows[0], (ROW_BLOCK - 3, 1)))
