"""Cost model and the approve/review/decline cut-offs chosen from it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from app.risk import risk_score


@dataclass(frozen=True)
class CostModel:
    """What each outcome costs, in the transaction currency.

    A fraud approved costs its amount (or ``fraud_loss`` when amounts are unknown);
    a review costs ``review_cost`` and is assumed to stop the fraud; declining a
    legitimate transaction costs ``false_decline_cost`` (lost margin and goodwill).
    """

    review_cost: float = 5.0
    false_decline_cost: float = 15.0
    fraud_loss: float = 100.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"cost model: {name} must be a non-negative number, got {value}")

    def as_dict(self) -> dict[str, float]:
        """Plain dict for model.json."""
        return asdict(self)


def _losses(y: np.ndarray, amounts: np.ndarray | None, costs: CostModel) -> np.ndarray:
    if amounts is None:
        return np.where(y == 1, costs.fraud_loss, 0.0)
    return np.where(y == 1, np.asarray(amounts, dtype=np.float64), 0.0)


def total_cost(p: np.ndarray, y: np.ndarray, amounts: np.ndarray | None, costs: CostModel,
               review: float, decline: float) -> float:
    """Cost of applying the cut-offs to scored, labelled transactions."""
    loss = _losses(y, amounts, costs)
    approve = p < review
    dec = p >= decline
    rev = ~approve & ~dec
    return float(loss[approve].sum() + costs.review_cost * rev.sum()
                 + costs.false_decline_cost * (dec & (y == 0)).sum())


def choose_thresholds(p: np.ndarray, y: np.ndarray, amounts: np.ndarray | None,
                      costs: CostModel, n_candidates: int = 400) -> dict[str, float]:
    """Review and decline cut-offs (review <= decline) minimising the total cost.

    Candidates are the scores of the frauds (an optimal cut-off sits exactly on
    one when declining a legitimate transaction costs more than reviewing it: moving
    a cut-off up to the next fraud's score only removes legitimate transactions from
    the band above it) plus score quantiles dense in the top tail; every
    (review, decline) pair is evaluated exactly with cumulative sums.
    """
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y)
    loss = _losses(y, amounts, costs)
    qs = 1.0 - np.logspace(-5, 0, n_candidates)
    pos = np.unique(p[y == 1])
    if len(pos) > 3000:  # bound the pair matrix (3,400^2 floats)
        pos = np.quantile(pos, np.linspace(0, 1, 3000))
    cand = np.unique(np.concatenate([np.quantile(p, np.clip(qs, 0, 1)), pos, [np.inf]]))
    order = np.argsort(p)
    ps, ls, legit = p[order], loss[order], (y[order] == 0).astype(np.float64)
    cum_loss = np.concatenate([[0.0], np.cumsum(ls)])
    cum_legit = np.concatenate([[0.0], np.cumsum(legit)])
    idx = np.searchsorted(ps, cand, side="left")  # rows below each cut-off
    n = len(ps)
    approved_loss = cum_loss[idx]  # per review cut-off
    declined_legit = cum_legit[n] - cum_legit[idx]  # per decline cut-off
    reviewed = idx[None, :] - idx[:, None]  # [r, d] rows in [r, d)
    cost = (approved_loss[:, None] + costs.review_cost * reviewed
            + costs.false_decline_cost * declined_legit[None, :])
    cost[reviewed < 0] = np.inf
    r, d = np.unravel_index(np.argmin(cost), cost.shape)
    review, decline = float(cand[r]), float(cand[d])
    return {"review": min(review, 1.0), "decline": min(decline, 1.0) if np.isfinite(decline) else 1.0}


def threshold_table(p: np.ndarray, y: np.ndarray, cutoffs: list[float]) -> list[dict[str, float]]:
    """Precision, recall, flag rate and false-positive rate at each cut-off."""
    p = np.asarray(p)
    y = np.asarray(y)
    pos = max(int((y == 1).sum()), 1)
    neg = max(int((y == 0).sum()), 1)
    rows = []
    for c in cutoffs:
        flag = p >= c
        tp = int((flag & (y == 1)).sum())
        fp = int((flag & (y == 0)).sum())
        rows.append({
            "cutoff": float(c),
            "risk_score": int(risk_score(c)),
            "precision": tp / (tp + fp) if tp + fp else 0.0,
            "recall": tp / pos,
            "flag_rate": float(flag.mean()) if len(p) else 0.0,
            "false_positive_rate": fp / neg,
        })
    return rows
