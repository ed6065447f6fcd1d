"""Risk score and decision from a calibrated fraud probability (shared by training and serving).

The 0-999 risk score is a fixed log scale of the calibrated probability, so it
means the same thing across model versions: 0 at or below 1 in 100,000, 200 per
factor of ten, 999 at certainty (1 in 1,000 -> 400, 1 in 100 -> 600, 1 in 10 -> 800).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

RISK_FLOOR_PROBABILITY = 1e-5
DECISIONS = ("approve", "review", "decline")


def risk_score(probability: np.ndarray | float) -> np.ndarray:
    """0-999 integer risk score(s) of calibrated fraud probabilities."""
    p = np.clip(np.asarray(probability, dtype=np.float64), RISK_FLOOR_PROBABILITY, 1.0)
    return np.rint(999.0 * (np.log10(p) + 5.0) / 5.0).astype(np.int64)


def risk_score_one(probability: float) -> int:
    """``risk_score`` of one probability without numpy's per-call overhead (the per-score path).

    Same formula and rounding (half to even) as ``risk_score``; a test holds them equal.
    """
    p = min(max(float(probability), RISK_FLOOR_PROBABILITY), 1.0)
    return int(round(999.0 * (math.log10(p) + 5.0) / 5.0))


def decide(probability: float, thresholds: Mapping[str, float]) -> str:
    """``approve`` below ``thresholds["review"]``, ``decline`` at or above
    ``thresholds["decline"]``, ``review`` in between."""
    if probability >= thresholds["decline"]:
        return "decline"
    if probability >= thresholds["review"]:
        return "review"
    return "approve"
