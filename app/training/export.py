"""Export: ``model.onnx`` with calibration inside the graph, and ``model.json``.

The ONNX graph takes one float32 input ``input`` ``[N, F]`` and has one output,
``probabilities`` ``[N, 2]`` (column 1 = calibrated fraud probability), so a
server needs nothing but ONNX Runtime. Export refuses to write a model whose ONNX
probabilities differ from scikit-learn's (calibrated the same way) by more than
``MAX_ONNX_DIFF`` on the validation period.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import to_onnx

from app.training.procedure import CLIP, apply_platt

MAX_ONNX_DIFF = 1e-5
INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"


class ExportRefused(RuntimeError):
    """The ONNX graph does not reproduce scikit-learn closely enough to be served."""


def build_onnx(model, n_features: int, a: float, b: float) -> onnx.ModelProto:
    """The booster converted by skl2onnx, followed by Platt calibration nodes."""
    sample = np.zeros((1, n_features), dtype=np.float32)
    onx = to_onnx(model, sample, options={id(model): {"zipmap": False}},
                  target_opset={"": 17, "ai.onnx.ml": 3})
    g = onx.graph
    old_in = g.input[0].name
    for node in g.node:
        node.input[:] = [INPUT_NAME if x == old_in else x for x in node.input]
        node.output[:] = ["raw_probabilities" if x == "probabilities" else
                          ("raw_label" if x == "label" else x) for x in node.output]
    del g.input[:]
    g.input.append(helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, n_features]))
    del g.output[:]
    consts = {
        "c_starts": np.array([1], dtype=np.int64), "c_ends": np.array([2], dtype=np.int64),
        "c_axes": np.array([1], dtype=np.int64), "c_lo": np.array(CLIP, dtype=np.float32),
        "c_hi": np.array(1 - CLIP, dtype=np.float32), "c_one": np.array(1.0, dtype=np.float32),
        "c_a": np.array(a, dtype=np.float32), "c_b": np.array(b, dtype=np.float32),
    }
    g.initializer.extend(numpy_helper.from_array(v, name=k) for k, v in consts.items())
    g.node.extend([
        helper.make_node("Slice", ["raw_probabilities", "c_starts", "c_ends", "c_axes"], ["p1"]),
        helper.make_node("Clip", ["p1", "c_lo", "c_hi"], ["pc"]),
        helper.make_node("Log", ["pc"], ["log_p"]),
        helper.make_node("Sub", ["c_one", "pc"], ["q"]),
        helper.make_node("Log", ["q"], ["log_q"]),
        helper.make_node("Sub", ["log_p", "log_q"], ["z"]),
        helper.make_node("Mul", ["z", "c_a"], ["az"]),
        helper.make_node("Add", ["az", "c_b"], ["zb"]),
        helper.make_node("Sigmoid", ["zb"], ["cal1"]),
        helper.make_node("Sub", ["c_one", "cal1"], ["cal0"]),
        helper.make_node("Concat", ["cal0", "cal1"], [OUTPUT_NAME], axis=1),
    ])
    g.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [None, 2]))
    onnx.checker.check_model(onx)
    return onx


def onnx_probabilities(onx_bytes: bytes, X: np.ndarray) -> np.ndarray:
    """Calibrated fraud probabilities from the serialised graph (one thread)."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(onx_bytes, so, providers=["CPUExecutionProvider"])
    return sess.run([OUTPUT_NAME], {INPUT_NAME: np.asarray(X, dtype=np.float32)})[0]


def check_parity(onx_bytes: bytes, model, a: float, b: float, X_val: np.ndarray) -> float:
    """Largest |ONNX - scikit-learn| calibrated probability on ``X_val``; raises past the limit."""
    X32 = np.asarray(X_val, dtype=np.float32)
    ref = apply_platt(model.predict_proba(X32)[:, 1], a, b)
    got = onnx_probabilities(onx_bytes, X32)
    if got.shape != (len(X32), 2):
        raise ExportRefused(f"ONNX output has shape {got.shape}, expected ({len(X32)}, 2)")
    diff = float(np.max(np.abs(got[:, 1].astype(np.float64) - ref))) if len(X32) else 0.0
    if not diff <= MAX_ONNX_DIFF:
        raise ExportRefused(
            f"ONNX and scikit-learn probabilities differ by {diff:.3g} (> {MAX_ONNX_DIFF:g}) "
            "on the validation set: not exporting")
    return diff


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


def write_model_dir(out_dir: Path, onx_bytes: bytes, meta: dict) -> None:
    """Write model.onnx and model.json atomically (a reader never sees a half model)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = dict(meta, sha256=sha256_bytes(onx_bytes))
    for name, data in (("model.onnx", onx_bytes),
                       ("model.json", json.dumps(meta, indent=2, sort_keys=False).encode())):
        tmp = out_dir / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, out_dir / name)


def histogram_reference(values: np.ndarray, bins: int = 20) -> dict:
    """Quantile bin edges and the share of rows per bin, for drift monitoring (PSI)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return {"edges": [], "shares": []}
    edges = np.unique(np.quantile(v, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        edges = np.array([edges[0], edges[0]])
    inner = edges[1:-1]
    counts = np.bincount(np.searchsorted(inner, v, side="right"), minlength=len(edges) - 1)
    return {"edges": [float(e) for e in edges], "shares": [float(c) for c in counts / len(v)]}
