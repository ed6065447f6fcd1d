"""A tiny model in the model-directory format, fitted in seconds for the tests.

Fraud in this toy world rises with log_amount, card_count_1h and an IP country
that differs from the card's, so tests can steer a transaction towards each
decision. Not shipped: tests fit it instead of keeping binary fixtures.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression

from app.features import FEATURE_NAMES

THRESHOLDS = {"review": 0.3, "decline": 0.8}


def build_tiny_model(out_dir: Path, version: str = "tiny-1") -> Path:
    """Fit and export the toy model; returns ``out_dir``."""
    rng = np.random.default_rng(0)
    f = len(FEATURE_NAMES)
    idx = {name: i for i, name in enumerate(FEATURE_NAMES)}
    # Every other column is constant, so the fit gives it exactly zero weight.
    x = np.zeros((4000, f), dtype=np.float32)
    x[:, idx["log_amount"]] = rng.uniform(0, 9, 4000)
    x[:, idx["card_count_1h"]] = rng.poisson(1.0, 4000)
    x[:, idx["ip_card_country_mismatch"]] = rng.integers(0, 2, 4000)
    logit = -9 + 0.9 * x[:, idx["log_amount"]] + 0.8 * x[:, idx["card_count_1h"]] + 2.0 * x[:, idx["ip_card_country_mismatch"]]
    y = (rng.uniform(size=4000) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    clf = LogisticRegression(max_iter=500).fit(x, y)
    onx = to_onnx(clf, x[:1], options={id(clf): {"zipmap": False}}, target_opset=17)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = onx.SerializeToString()
    (out_dir / "model.onnx").write_bytes(data)
    meta = {
        "features": list(FEATURE_NAMES), "version": version, "thresholds": THRESHOLDS,
        "sha256": hashlib.sha256(data).hexdigest(),
        "reference": {"medians": {name: float(np.median(x[:, i])) for i, name in enumerate(FEATURE_NAMES)}},
    }
    (out_dir / "model.json").write_text(json.dumps(meta, indent=1))
    return out_dir
