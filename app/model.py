"""The ONNX model: loaded once, verified against model.json, scored off the event loop.

Reasons come from the model itself: a feature's impact is the change in score
when that feature alone is replaced by its reference value (model.json). All
those counterfactual rows of a request, or of a whole batch, go through one
``InferenceSession.run`` call, so explanations cost one batched inference rather
than F separate ones. For a tree ensemble, only the counterfactuals that can
reach another leaf are run (``app.pruning``): the others have impact exactly 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import io
import json
import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from app.pruning import Pruner, pruner

log = logging.getLogger("fraudstack.model")


#: Every ONNX run is padded to a multiple of this many rows. ONNX Runtime computes some
#: element-wise float ops with Eigen (Log, in the Platt calibration of our exported graph):
#: whole SIMD packets through a vectorised approximation, the last ``rows % packet`` values
#: through the C library's scalar function, and the two can differ in the last bit. Unpadded,
#: a row's probability depends on where it sits in the batch and on the batch's length
#: (measured on the demo model: 3 % of rows, by up to 1.2e-7): the same transaction scored
#: alone or in a batch got scores and impacts differing by that much, and a counterfactual
#: at the end of a batch could show a spurious impact of that size for a feature that
#: changes nothing. With no row in the scalar tail, a row's probability depends on the row
#: alone. 4 is the float packet of the wheels we install (SSE on x86-64, as measured here;
#: NEON on arm64); a build of ONNX Runtime with AVX (8) or AVX-512 (16) compiled into Eigen
#: would need more, and tests/model/test_reasons.py would fail on it. Each padding row
#: costs a tree evaluation (~1 µs), which is why this is not simply 16.
ROW_BLOCK = 4


#: Counterfactual pruning needs one more ONNX run (the trees' leaves). For a single row on
#: the demo model that costs more than it saves (12 rows run instead of 29, against one more
#: call and a few numpy steps: 60 against 50 µs measured), so single scores run every
#: counterfactual; from two rows up pruning wins (bench/reasons.py). Results are identical.
PRUNE_MIN_ROWS = 2


def padded(x: np.ndarray) -> np.ndarray:
    """``x`` padded with copies of its first row to a multiple of ``ROW_BLOCK`` rows."""
    total = -(-len(x) // ROW_BLOCK) * ROW_BLOCK
    if total == len(x):
        return x
    out = np.empty((total, x.shape[1]), dtype=x.dtype)
    out[:len(x)] = x
    out[len(x):] = x[0]  # any valid row: its result is dropped
    return out


def _minus_impact(pair: tuple[int, float]) -> float:
    return -pair[1]


class ModelLoadError(RuntimeError):
    """The model directory is missing, corrupt or does not match its checksum."""


@dataclass(frozen=True)
class Thresholds:
    """Score cut-offs: ``score >= decline`` declines, ``score >= review`` goes to review."""

    review: float
    decline: float

    def decide(self, score: float) -> str:
        """Map a probability to approve/review/decline."""
        if score >= self.decline:
            return "decline"
        if score >= self.review:
            return "review"
        return "approve"


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _reference_values(meta: dict[str, Any], features: list[str]) -> np.ndarray:
    # model.json keeps one reference value per feature (the training median, say).
    ref = meta.get("reference")
    if isinstance(ref, dict) and isinstance(ref.get("medians"), dict):
        ref = ref["medians"]
    if isinstance(ref, dict):
        missing = [f for f in features if f not in ref]
        if missing:
            raise ModelLoadError(f"model.json: reference values missing for {missing[:5]}")
        return np.asarray([float(ref[f]) for f in features], dtype=np.float32)
    if isinstance(ref, list) and len(ref) == len(features):
        return np.asarray(ref, dtype=np.float32)
    raise ModelLoadError("model.json: no per-feature reference values ('reference': {'medians': {...}})")


#: Preferred first: CUDA when this onnxruntime build has it (the GPU image installs
#: onnxruntime-gpu), the CPU provider always as the fallback.
PROVIDER_PREFERENCE = ("CUDAExecutionProvider", "CPUExecutionProvider")


def execution_providers(available: list[str] | None = None) -> list[str]:
    """The providers to ask for, best first, among those this onnxruntime build offers."""
    available = ort.get_available_providers() if available is None else available
    return [p for p in PROVIDER_PREFERENCE if p in available] or ["CPUExecutionProvider"]


@functools.cache
def preload_cuda_libraries() -> None:
    """Load the CUDA and cuDNN libraries that NVIDIA's wheels put in site-packages (once).

    The GPU image (app/Dockerfile, ``runtime-gpu``) installs them as Python packages
    (``onnxruntime-gpu[cuda,cudnn]``), outside the dynamic loader's search path, and the
    CUDA provider's library only looks next to itself: ``onnxruntime.preload_dlls`` loads
    them from site-packages first. It reports problems with ``print``; they go to the log.
    """
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:  # a build without it (the CPU package has it too, and never gets here)
        return
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            preload()
    except Exception as exc:  # onnxruntime raises RuntimeError for a missing directory
        log.warning("CUDA libraries not preloaded (%s)", str(exc)[:200])
        return
    if printed.getvalue().strip():
        log.warning("CUDA library preload: %s", " ".join(printed.getvalue().split())[:300])


def create_session(path: str, opts: ort.SessionOptions) -> ort.InferenceSession:
    """An inference session on the GPU when one is usable, else on the CPU.

    A CUDA build on a node without a GPU (or without the driver) fails to create the CUDA
    provider; the model then loads on the CPU instead of failing the pod.
    """
    providers = execution_providers()
    if providers[0] != "CPUExecutionProvider":
        preload_cuda_libraries()
        try:
            return ort.InferenceSession(path, sess_options=opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            log.warning("CUDA execution provider unavailable (%s); scoring on the CPU", str(exc)[:200])
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


class ScoringModel:
    """One ONNX model directory (model.onnx + model.json)."""

    def __init__(self, model_dir: Path, threads: int = 1, review: float | None = None, decline: float | None = None) -> None:
        self.model_dir = Path(model_dir)
        self._threads = threads
        self._override = (review, decline)
        self.session: ort.InferenceSession | None = None
        self.features: list[str] = []
        self.version = "unloaded"
        self.sha256 = ""
        self.thresholds = Thresholds(0.5, 0.9)
        self.reference = np.zeros(0, dtype=np.float32)
        self.metadata: dict[str, Any] = {}
        self._input = ""
        self.provider = "none"
        self.pruner: Pruner | None = None

    @property
    def n_features(self) -> int:
        """Width of the input vector."""
        return len(self.features)

    def load(self) -> None:
        """Read model.json, verify model.onnx's SHA-256 and create the session (once)."""
        meta_path, onnx_path = self.model_dir / "model.json", self.model_dir / "model.onnx"
        for p in (meta_path, onnx_path):
            if not p.is_file():
                raise ModelLoadError(f"{p} does not exist")
        try:
            meta = json.loads(meta_path.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ModelLoadError(f"{meta_path} is not valid JSON: {exc}") from None
        for key in ("features", "version", "sha256", "thresholds"):
            if key not in meta:
                raise ModelLoadError(f"{meta_path}: missing key '{key}'")
        actual = file_sha256(onnx_path)
        if actual != str(meta["sha256"]).lower():
            raise ModelLoadError(f"{onnx_path}: SHA-256 {actual[:12]}... does not match model.json ({str(meta['sha256'])[:12]}...)")
        features = [str(f) for f in meta["features"]]
        th = meta["thresholds"]
        review = self._override[0] if self._override[0] is not None else float(th["review"])
        decline = self._override[1] if self._override[1] is not None else float(th["decline"])
        if not 0 <= review <= decline <= 1:
            raise ModelLoadError(f"thresholds must satisfy 0 <= review ({review}) <= decline ({decline}) <= 1")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self._threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            session = create_session(str(onnx_path), opts)
        except Exception as exc:  # onnxruntime raises its own untyped errors for corrupt files
            raise ModelLoadError(f"{onnx_path} cannot be loaded by ONNX Runtime: {str(exc)[:200]}") from None
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise ModelLoadError(f"model.onnx has {len(inputs)} inputs; expected one float32 [N, F]")
        shape = inputs[0].shape
        if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != len(features)):
            raise ModelLoadError(f"model.onnx input shape {shape} does not match {len(features)} features in model.json")
        if "probabilities" not in {o.name for o in session.get_outputs()}:
            raise ModelLoadError("model.onnx has no 'probabilities' output")
        reference = _reference_values(meta, features)
        self.pruner = pruner(onnx_path, inputs[0].name, reference, opts)
        self.reference = reference
        self.session, self.features, self.metadata = session, features, meta
        self._input = inputs[0].name
        self.version, self.sha256 = str(meta["version"]), actual
        self.thresholds = Thresholds(review, decline)
        # Warm-up: the first run allocates arenas; pay that before traffic arrives.
        self.probabilities(np.tile(self.reference, (4, 1)))
        self.provider = session.get_providers()[0]
        log.info("model %s loaded from %s (%d features, sha256 %s..., %s)", self.version, self.model_dir, len(features), actual[:12], self.provider)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Raw ``[N, 2]`` class probabilities for a float32 ``[N, F]`` matrix (call from a worker thread)."""
        assert self.session is not None, "model not loaded"
        return self.session.run(["probabilities"], {self._input: x})[0]

    def score_with_reasons(self, x: np.ndarray, top_k: int, prune: bool = True
                           ) -> tuple[np.ndarray, list[list[tuple[int, float]]]]:
        """Fraud probability per row and its top ``top_k`` risk-raising features as (index, impact).

        One ONNX run scores each row and its counterfactuals (feature j set to its
        reference value); impact_j = score - counterfactual score. Features already
        at their reference value have impact 0 and get no counterfactual row; for a
        tree ensemble neither do features whose counterfactual reaches the row's own
        leaf in every tree (same score, impact exactly 0), from ``PRUNE_MIN_ROWS`` rows
        up. ``prune=False`` runs every counterfactual (the reference the pruned results
        are tested against).
        """
        n, f = x.shape
        if n == 0:
            return np.zeros(0), []
        if top_k == 0:
            return self.probabilities(padded(x))[:n, 1].astype(np.float64), [[] for _ in range(n)]
        changes = x != self.reference
        if prune and self.pruner is not None and n >= PRUNE_MIN_ROWS:
            changes &= self.pruner.may_change(x)
        ii, jj = np.nonzero(changes)
        m = len(ii)
        # Rows, then counterfactuals, then padding, built in one buffer.
        rows = np.empty((-(-(n + m) // ROW_BLOCK) * ROW_BLOCK, f), dtype=x.dtype)
        rows[:n] = x
        np.take(x, ii, axis=0, out=rows[n:n + m], mode="clip")  # "clip": no index check, no temporary copy
        rows[n + np.arange(m), jj] = self.reference[jj]
        rows[n + m:] = x[0]
        p = self.probabilities(rows)[:n + m, 1].astype(np.float64)
        scores = p[:n]
        impact = np.zeros((n, f))
        impact[ii, jj] = scores[ii] - p[n:]
        k = min(top_k, f)
        top = np.argpartition(-impact, k - 1, axis=1)[:, :k] if k < f else np.tile(np.arange(f), (n, 1))
        values = impact[np.arange(n)[:, None], top]
        reasons: list[list[tuple[int, float]]] = []
        for js, vs in zip(top.tolist(), values.tolist()):
            # Highest impact first; the sort is stable, so equal impacts keep argpartition's order.
            pairs = sorted(zip(js, vs), key=_minus_impact)
            reasons.append([pair for pair in pairs if pair[1] > 0])
        return scores, reasons


class InferenceThread:
    """One thread that runs model calls handed to it, results delivered on the event loop.

    Lighter than ``run_in_executor`` on a ``ThreadPoolExecutor`` for the per-score path
    (no concurrent ``Future``, no condition variable, no future chaining): a job is one
    ``SimpleQueue.put``, its result one ``call_soon_threadsafe``. ONNX Runtime releases
    the GIL while it runs, so the event loop keeps serving meanwhile.
    """

    def __init__(self, name: str = "onnx-scores") -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, loop: asyncio.AbstractEventLoop, fn: Any, args: tuple[Any, ...], done: Any) -> None:
        """Run ``fn(*args)`` on the thread, then ``done(result, exception)`` on ``loop``."""
        self._queue.put((loop, fn, args, done))

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            loop, fn, args, done = job
            try:
                result, error = fn(*args), None
            except BaseException as exc:  # delivered to the waiting requests, not lost in the thread
                result, error = None, exc
            try:
                loop.call_soon_threadsafe(done, result, error)
            except RuntimeError:  # the loop closed while the job ran: nobody is waiting
                pass

    def stop(self) -> None:
        """Finish queued jobs, then end the thread."""
        self._queue.put(None)
        self._thread.join()


class InferenceBatcher:
    """Coalesces concurrent single scores into one ONNX run on the inference thread.

    At most one batch is in flight; requests arriving meanwhile wait for the next
    one. A batch leaves at the end of the event loop's current step (``call_soon``),
    not with the first request: every score that reaches inference in the same step
    joins it. Under load this turns many thread hand-offs into one, and a run of n
    rows costs far less than n runs of one (with reasons: 27 µs for 1 row, 44 µs for
    4, 81 µs for 16 on the demo model, timed once); it never blocks the event loop. Leaving at
    the end of the step cut the worker's CPU per ``/v1/score`` at saturation from
    372 to 314 µs (means of two runs each, alternating, ``python -m bench.probe
    --only score``, 2026-11-22 07:45 UTC): batches of one fell from about 40 % of
    runs to 10 %. With a single request it costs one hand-off and one loop step.
    """

    def __init__(self, model: ScoringModel, runner: InferenceThread, top_k: int, max_rows: int = 256) -> None:
        self.model, self.runner, self.top_k, self.max_rows = model, runner, top_k, max_rows
        self._pending: list[tuple[np.ndarray, Any]] = []
        self._running = False

    async def score(self, x: np.ndarray) -> tuple[float, list[tuple[int, float]]]:
        """Score one float32 feature vector; returns (score, reasons)."""
        fut = asyncio.get_running_loop().create_future()
        self._pending.append((x, fut))
        if not self._running:
            self._running = True
            asyncio.get_running_loop().call_soon(self._launch)
        return await fut

    def _launch(self) -> None:
        batch, self._pending = self._pending[:self.max_rows], self._pending[self.max_rows:]
        matrix = np.stack([row for row, _ in batch])
        self.runner.submit(asyncio.get_running_loop(), self.model.score_with_reasons, (matrix, self.top_k),
                           lambda result, exc: self._finish(batch, result, exc))

    def _finish(self, batch: list[tuple[np.ndarray, Any]], result: Any, exc: BaseException | None) -> None:
        if exc is None:
            scores, reasons = result
        for i, (_, fut) in enumerate(batch):
            if fut.done():  # the caller went away (client disconnect)
                continue
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result((float(scores[i]), reasons[i]))
        if self._pending:
            self._launch()
        else:
            self._running = False
