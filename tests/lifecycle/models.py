"""Tiny models in the model-directory format, fitted in a second for the tests.

``bias`` moves every score: ``bias=0`` scores the example transaction low (approve),
``bias=12`` pushes every score above 0.99 (decline), so a response's score alone
tells which model produced it.
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


def build_model(out_dir: Path, version: str, bias: float = 0.0, features: list[str] | None = None,
                parity: bool = True) -> Path:
    """Fit a logistic regression on a toy world and export model.onnx + model.json into ``out_dir``."""
    rng = np.random.default_rng(0)
    names = list(features or FEATURE_NAMES)
    f = len(names)
    idx = {name: i for i, name in enumerate(FEATURE_NAMES)}
    x = np.zeros((3000, f), dtype=np.float32)
    x[:, idx["log_amount"]] = rng.uniform(0, 9, 3000)
    x[:, idx["card_count_1h"]] = rng.poisson(1.0, 3000)
    logit = -9 + 0.9 * x[:, idx["log_amount"]] + 0.8 * x[:, idx["card_count_1h"]]
    y = (rng.uniform(size=3000) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    clf = LogisticRegression(max_iter=500).fit(x, y)
    clf.intercept_ = clf.intercept_ + bias
    onx = to_onnx(clf, x[:1], options={id(clf): {"zipmap": False}}, target_opset=17)
    data = onx.SerializeToString()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "model.onnx").write_bytes(data)
    meta = {
        "features": names, "version": version, "thresholds": THRESHOLDS,
        "sha256": hashlib.sha256(data).hexdigest(),
        "reference": {"medians": {name: float(np.median(x[:, i])) for i, name in enumerate(names)}},
    }
    from app.training.export import histogram_reference

    p = clf.predict_proba(x)[:, 1]
    meta["drift_reference"] = {"score": histogram_reference(p),
                               "features": {"log_amount": histogram_reference(x[:, idx["log_amount"]])}}
    if parity:
        sample = x[:16]
        meta["parity"] = {"inputs": sample.tolist(), "probabilities": clf.predict_proba(sample)[:, 1].tolist()}
    (out_dir / "model.json").write_text(json.dumps(meta))
    return out_dir
