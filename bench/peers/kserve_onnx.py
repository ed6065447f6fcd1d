"""The peer for bench.compare: KServe's Python ModelServer serving the same ONNX file.

Runs inside bench/.venv-kserve (created by bench/setup_peers.sh), never in the
project's virtualenv. A minimal custom ``kserve.Model``, written as KServe's docs
show: load the ONNX Runtime session once, ``predict`` turns the Open Inference
Protocol tensor into a float32 matrix and returns the ``probabilities`` output.
Same session options as the service (one intra-op thread).

    python bench/peers/kserve_onnx.py --model-dir DIR --name fraudstack --port PORT

KServe 0.21 hard-codes ``host="0.0.0.0"`` for its REST server; the only change made
here is to bind it to 127.0.0.1 instead (the benchmark never listens beyond loopback).
The gRPC server is switched off (``--enable_grpc false``): only REST is compared.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
import uvicorn
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer


class OnnxModel(Model):
    """One ONNX model with a float32 [N, F] input and a ``probabilities`` [N, 2] output."""

    def __init__(self, name: str, model_dir: Path) -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self.session: ort.InferenceSession | None = None
        self.input_name = ""

    def load(self) -> bool:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.model_dir / "model.onnx"), sess_options=opts,
                                            providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.ready = True
        return self.ready

    def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
        x = payload.inputs[0].as_numpy().astype(np.float32, copy=False)
        probs = self.session.run(["probabilities"], {self.input_name: x})[0]
        out = InferOutput(name="probabilities", shape=list(probs.shape), datatype="FP32", data=probs.reshape(-1).tolist())
        return InferResponse(response_id=payload.id or "", model_name=self.name, infer_outputs=[out])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--name", default="fraudstack")
    parser.add_argument("--port", type=int, required=True)
    args, _ = parser.parse_known_args()
    # Loopback only (see the module docstring).
    original = uvicorn.Config.__init__

    def loopback(self: uvicorn.Config, *a: object, **kw: object) -> None:
        kw["host"] = "127.0.0.1"
        original(self, *a, **kw)

    uvicorn.Config.__init__ = loopback  # type: ignore[method-assign]

    model = OnnxModel(args.name, args.model_dir)
    model.load()
    server = ModelServer(http_port=args.port, enable_grpc=False, workers=1, enable_latency_logging=False)
    # Like the service (access_log=False), no per-request access or trace lines: the
    # comparison measures serving, not logging.
    for name in ("uvicorn.access", "kserve.trace"):
        logging.getLogger(name).setLevel(logging.WARNING)
    server.start([model])


if __name__ == "__main__":
    main()
