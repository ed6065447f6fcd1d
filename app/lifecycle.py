"""Model lifecycle in the service: a versioned model store, verification, and hot swap.

Layout of a store (an S3 bucket prefix, or a local directory on a laptop)::

    models/<version>/model.onnx, model.json[, report.html]
    pointers/active       {"version": "...", "sha256": "..."}
    pointers/candidate    (written by retraining; the service only shadows it)

The service serves the version named by ``FRAUDSTACK_MODEL_VERSION`` or, when that
is unset, the one the ``active`` pointer names. A reload (SIGHUP or
``POST /admin/model/reload`` with the admin key) downloads and verifies the new
version off the event loop, then swaps it in with one assignment on the event loop:
requests that already picked the old model finish on it, later ones get the new one.
A model that fails verification is refused and the old one keeps serving.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import re
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from prometheus_client import Counter
from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.model import ModelLoadError, ScoringModel

log = logging.getLogger("fraudstack.lifecycle")

MODEL_FILES = ("model.onnx", "model.json")
OPTIONAL_FILES = ("report.html",)
POINTERS = ("active", "candidate")
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
PARITY_TOLERANCE = 1e-5

RELOADS = Counter("fraudstack_model_reloads_total", "Model reload attempts by result", ["result"])


class LifecycleSettings(BaseSettings):
    """Model-store and admin settings (environment, prefix ``FRAUDSTACK_``)."""

    model_config = SettingsConfigDict(env_prefix="FRAUDSTACK_", extra="ignore")

    model_store: str | None = Field(None, description="Model store: s3://bucket/prefix or a local directory. Unset: FRAUDSTACK_MODEL_DIR only, no reloads from a store.")
    model_version: str | None = Field(None, pattern=VERSION_RE.pattern, description="Version to serve from the store; unset: the version the store's 'active' pointer names.")
    admin_key_hash: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="SHA-256 hex of the admin key for /admin routes (separate from client keys). Unset: admin routes answer 403.")
    shadow_version: str | None = Field(None, pattern=VERSION_RE.pattern, description="Candidate version scored in shadow; 'candidate' follows the store's candidate pointer. Unset: no shadow.")
    shadow_queue_size: int = Field(10_000, ge=1, le=1_000_000, description="Shadow rows waiting for the candidate; more are dropped (and counted), never waited for.")
    aws_region: str | None = Field(None, description="Region of the S3 model store.")
    model_poll_seconds: float = Field(30, ge=0, le=86400, description="How often every worker re-reads the store's 'active' pointer and swaps to the version it names (fleet-wide roll-forward/back by moving the pointer); 0 disables. Ignored when FRAUDSTACK_MODEL_VERSION pins a version.")
    drift_window: int = Field(5000, ge=100, le=10_000_000, description="Scores per drift window: PSI and decision rates are published each time this many have been served.")
    service_name: str = Field("scoring-api", description="Service dimension of the CloudWatch EMF metrics (= fraudstack:alarms.service.deployment).")
    emit_emf: bool = Field(True, description="Log drift and quality metrics as CloudWatch embedded metric format lines.")
    quality_interval_seconds: float = Field(300, ge=0, description="How often precision/recall are recomputed from the PostgreSQL audit trail; 0 disables.")
    quality_days: int = Field(30, ge=1, le=365, description="Decisions of the last N days count for precision/recall.")


def load_lifecycle_settings() -> LifecycleSettings:
    """Read the lifecycle settings; a bad value raises ``SettingsError`` naming the variable."""
    from pydantic import ValidationError

    from app.settings import SettingsError

    try:
        return LifecycleSettings()
    except ValidationError as exc:
        problems = [f"FRAUDSTACK_{str(e['loc'][0]).upper()}: {e['msg']}" if e["loc"] else f"settings: {e['msg']}"
                    for e in exc.errors(include_input=False)]
        raise SettingsError("; ".join(problems)) from None


class StoreError(RuntimeError):
    """The model store cannot be read or does not hold what was asked for."""


class ModelStore(Protocol):
    """What the service and retraining need from a store."""

    def read_pointer(self, name: str) -> str | None: ...
    def pointer_doc(self, name: str) -> dict[str, Any] | None: ...
    def write_pointer(self, name: str, version: str, sha256: str, previous: str | None = None) -> None: ...
    def download(self, version: str, dest: Path) -> Path: ...
    def upload(self, version: str, src: Path) -> None: ...


def _check_version(version: str) -> str:
    if not VERSION_RE.match(version or ""):
        raise StoreError(f"model version {version!r} is not a valid name ([A-Za-z0-9_.-], at most 128)")
    return version


def _check_pointer(name: str) -> str:
    if name not in POINTERS:
        raise StoreError(f"pointer {name!r} is not one of {POINTERS}")
    return name


def _parse_pointer(raw: bytes, where: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
        _check_version(str(data["version"]))
        return dict(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"{where}: not a pointer document ({exc})") from None


def _pointer_body(version: str, sha256: str, previous: str | None) -> bytes:
    doc: dict[str, Any] = {"version": _check_version(version), "sha256": sha256}
    if previous:
        doc["previous"] = _check_version(previous)  # what a roll-back returns to
    return json.dumps(doc).encode()


class LocalModelStore:
    """A store in a local directory (laptops, tests)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def read_pointer(self, name: str) -> str | None:
        """Version a pointer names, or None when the pointer does not exist."""
        doc = self.pointer_doc(name)
        return None if doc is None else str(doc["version"])

    def pointer_doc(self, name: str) -> dict[str, Any] | None:
        """The pointer document (version, sha256, previous), or None."""
        path = self.root / "pointers" / _check_pointer(name)
        if not path.is_file():
            return None
        return _parse_pointer(path.read_bytes(), str(path))

    def write_pointer(self, name: str, version: str, sha256: str, previous: str | None = None) -> None:
        """Point ``name`` at ``version`` (atomic rename)."""
        path = self.root / "pointers" / _check_pointer(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(_pointer_body(version, sha256, previous))
        os.replace(tmp, path)

    def download(self, version: str, dest: Path) -> Path:
        """Copy the version's files into ``dest``."""
        src = self.root / "models" / _check_version(version)
        dest.mkdir(parents=True, exist_ok=True)
        for name in MODEL_FILES + OPTIONAL_FILES:
            if (src / name).is_file():
                shutil.copyfile(src / name, dest / name)
            elif name in MODEL_FILES:
                raise StoreError(f"{src / name} does not exist")
        return dest

    def upload(self, version: str, src: Path) -> None:
        """Copy a model directory into the store."""
        dest = self.root / "models" / _check_version(version)
        dest.mkdir(parents=True, exist_ok=True)
        for name in MODEL_FILES + OPTIONAL_FILES:
            if (Path(src) / name).is_file():
                shutil.copyfile(Path(src) / name, dest / name)


class S3ModelStore:
    """A store under ``s3://bucket/prefix`` (boto3 client; SSE-KMS is the bucket's default)."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/")

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def read_pointer(self, name: str) -> str | None:
        """Version a pointer names, or None when the pointer object does not exist."""
        doc = self.pointer_doc(name)
        return None if doc is None else str(doc["version"])

    def pointer_doc(self, name: str) -> dict[str, Any] | None:
        """The pointer document (version, sha256, previous), or None."""
        key = self._key("pointers", _check_pointer(name))
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None
        return _parse_pointer(body, f"s3://{self.bucket}/{key}")

    def write_pointer(self, name: str, version: str, sha256: str, previous: str | None = None) -> None:
        """Point ``name`` at ``version`` (one PUT: S3 objects are replaced atomically)."""
        body = _pointer_body(version, sha256, previous)
        self.client.put_object(Bucket=self.bucket, Key=self._key("pointers", _check_pointer(name)), Body=body,
                               ContentType="application/json")

    def download(self, version: str, dest: Path) -> Path:
        """Fetch the version's files into ``dest``."""
        from botocore.exceptions import ClientError

        dest.mkdir(parents=True, exist_ok=True)
        for name in MODEL_FILES + OPTIONAL_FILES:
            key = self._key("models", _check_version(version), name)
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except ClientError as exc:
                if name in OPTIONAL_FILES:
                    continue
                raise StoreError(f"s3://{self.bucket}/{key}: {exc.response.get('Error', {}).get('Code', exc)}") from None
            (dest / name).write_bytes(body)
        return dest

    def upload(self, version: str, src: Path) -> None:
        """Upload a model directory (model.json last, so a half upload has no metadata)."""
        _check_version(version)
        for name in ("model.onnx", *OPTIONAL_FILES, "model.json"):
            path = Path(src) / name
            if path.is_file():
                self.client.put_object(Bucket=self.bucket, Key=self._key("models", _check_version(version), name),
                                       Body=path.read_bytes())


def open_store(uri: str, region: str | None = None, client: Any = None) -> ModelStore:
    """``s3://bucket/prefix`` -> S3ModelStore; anything else is a local directory."""
    if uri.startswith("s3://"):
        bucket, _, prefix = uri[5:].partition("/")
        if not bucket:
            raise StoreError(f"FRAUDSTACK_MODEL_STORE: {uri!r} names no bucket")
        if client is None:
            import boto3

            client = boto3.client("s3", region_name=region)
        return S3ModelStore(client, bucket, prefix)
    return LocalModelStore(Path(uri))


def verify_model(model: ScoringModel, feature_names: tuple[str, ...] | list[str]) -> None:
    """Load (SHA-256 checked against model.json) and run the parity gates; raises ModelLoadError.

    Gates: the feature list equals the serving code's, the graph gives finite
    probabilities that sum to one on the reference row, and, when model.json holds a
    ``parity`` sample (inputs and the probabilities training computed for them), ONNX
    Runtime here reproduces them within PARITY_TOLERANCE.
    """
    model.load()
    if list(model.features) != list(feature_names):
        raise ModelLoadError("model.json features differ from app.features.FEATURE_NAMES (model built by another feature version)")
    probs = model.probabilities(model.reference.reshape(1, -1))
    if probs.shape != (1, 2) or not np.isfinite(probs).all() or abs(float(probs.sum()) - 1.0) > 1e-3:
        raise ModelLoadError(f"model.onnx gives {probs.tolist()} on the reference row: not probabilities")
    parity = model.metadata.get("parity")
    if parity is not None:
        try:
            x = np.asarray(parity["inputs"], dtype=np.float32)
            expected = np.asarray(parity["probabilities"], dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            raise ModelLoadError("model.json 'parity' must hold 'inputs' [[...]] and 'probabilities' [...]") from None
        got = model.probabilities(x)[:, 1].astype(np.float64)
        if got.shape != expected.shape:
            raise ModelLoadError(f"model.json parity sample has {expected.shape} probabilities for {got.shape} rows")
        diff = float(np.max(np.abs(got - expected))) if len(got) else 0.0
        if diff > PARITY_TOLERANCE:
            raise ModelLoadError(f"ONNX parity check failed: max |diff| {diff:.3g} > {PARITY_TOLERANCE:g}")


def hash_key(key: str) -> str:
    """SHA-256 hex of a key (what FRAUDSTACK_ADMIN_KEY_HASH holds)."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ReloadResult:
    """Outcome of a reload: what serves now and what happened."""

    swapped: bool
    version: str
    previous: str
    message: str


class ModelManager:
    """Resolves, verifies and swaps the service's model; one reload at a time."""

    def __init__(self, service: Any, lifecycle: LifecycleSettings, store: ModelStore | None) -> None:
        self.service, self.lifecycle, self.store = service, lifecycle, store
        self.cache = Path(service.settings.data_dir) / "models"
        self._lock = asyncio.Lock()
        self.last_error: str | None = None
        self.shadow: Any = None  # app.shadow.ShadowScorer
        self.drift: Any = None  # app.drift.DriftMonitor of the active model
        self.quality: Any = None  # app.drift.QualityMonitor
        self._poller: asyncio.Task[None] | None = None
        self._refused: str | None = None  # a pointer target that failed verification: not retried until it moves

    @property
    def dimensions(self) -> dict[str, str] | None:
        """EMF dimensions (Environment, Service), or None when EMF is off."""
        if not self.lifecycle.emit_emf:
            return None
        env = self.service.settings.environment
        return {"Environment": getattr(env, "value", str(env)), "Service": self.lifecycle.service_name}

    def _set_observers(self) -> None:
        self.service.observers = [o for o in (self.drift, self.shadow) if o is not None]

    def _monitor(self, model: ScoringModel) -> None:
        """A fresh drift monitor for the model now serving (PSI is per model)."""
        from app.drift import DriftMonitor

        if self.drift is not None and self.drift.n:
            self.drift.flush()
        self.drift = DriftMonitor.for_model(model, window=self.lifecycle.drift_window, dimensions=self.dimensions) \
            if model.session is not None else None
        self._set_observers()

    def _new_model(self, model_dir: Path) -> ScoringModel:
        s = self.service.settings
        return ScoringModel(model_dir, s.inference_threads, s.threshold_review, s.threshold_decline)

    def resolve_version(self, requested: str | None = None) -> str | None:
        """Requested version, else FRAUDSTACK_MODEL_VERSION, else the active pointer (None: no store)."""
        if requested:
            return _check_version(requested)
        if self.lifecycle.model_version:
            return self.lifecycle.model_version
        if self.store is None:
            return None
        version = self.store.read_pointer("active")
        if version is None:
            # A new stack's store is empty until the first `python -m app.lifecycle promote`:
            # serve the configured directory (the image's model) meanwhile; the pointer poll
            # moves every worker to the promoted version. An unreadable store still fails.
            log.warning("model store has no 'active' pointer yet: serving %s until a version is promoted",
                        self.service.settings.model_dir)
            return None
        return version

    def fetch(self, version: str) -> Path:
        """Download a version into the local cache (a fresh directory per download)."""
        assert self.store is not None
        self.cache.mkdir(parents=True, exist_ok=True)
        dest = Path(tempfile.mkdtemp(prefix=f"{version}-", dir=self.cache))
        return self.store.download(version, dest)

    def prepare(self) -> None:
        """Before start-up: point the service at the store's version (loaded by ``Service.start``)."""
        version = self.resolve_version()
        if version is None:
            return
        model_dir = self.fetch(version)
        self.service.swap_model(self._new_model(model_dir))

    def _load_candidate(self, requested: str | None) -> ScoringModel:
        from app.features import FEATURE_NAMES

        if self.store is None and not requested:
            model_dir = Path(self.service.model.model_dir)  # re-read the configured directory
        else:
            if self.store is None:
                raise StoreError("no model store configured (FRAUDSTACK_MODEL_STORE): cannot fetch a version")
            version = self.resolve_version(requested)
            assert version is not None
            model_dir = self.fetch(version)
        model = self._new_model(model_dir)
        try:
            verify_model(model, FEATURE_NAMES)
            if requested and model.version != requested:
                raise ModelLoadError(f"models/{requested}/model.json names version {model.version!r}")
        except ModelLoadError:
            self._discard(model_dir)
            raise
        return model

    def _discard(self, model_dir: Path) -> None:
        """Delete a downloaded directory (never the configured FRAUDSTACK_MODEL_DIR)."""
        if Path(model_dir).parent == self.cache:
            shutil.rmtree(model_dir, ignore_errors=True)

    def prune_cache(self, keep: set[Path]) -> None:
        """Keep only the downloads still in use (the ephemeral volume is small)."""
        if not self.cache.is_dir():
            return
        for d in self.cache.iterdir():
            if d.is_dir() and d not in keep:
                shutil.rmtree(d, ignore_errors=True)

    async def reload(self, version: str | None = None) -> ReloadResult:
        """Fetch and verify off the event loop, then swap; on any failure the old model keeps serving."""
        async with self._lock:
            previous = self.service.model.version
            previous_dir = Path(self.service.model.model_dir)
            try:
                model = await asyncio.to_thread(self._load_candidate, version)
            except (ModelLoadError, StoreError) as exc:
                self.last_error = str(exc)
                RELOADS.labels("refused").inc()
                log.error("model reload refused, %s keeps serving: %s", previous, exc)
                return ReloadResult(False, previous, previous, f"refused: {exc}")
            except Exception as exc:  # network errors from the store: still never take down the old model
                self.last_error = f"{type(exc).__name__}: {exc}"
                RELOADS.labels("failed").inc()
                log.error("model reload failed, %s keeps serving: %s", previous, self.last_error)
                return ReloadResult(False, previous, previous, f"failed: {self.last_error}")
            self.service.swap_model(model)
            # Cleared with the swap, before any await: readiness must never show the new
            # version next to the previous attempt's error.
            self.last_error = None
            self._monitor(model)
            # The previous directory stays until the next swap: requests in flight hold its
            # session (loaded in memory), and it is the quickest roll-back on this node.
            await asyncio.to_thread(self.prune_cache, {Path(model.model_dir), previous_dir})
            RELOADS.labels("swapped").inc()
            log.info("model %s swapped in (was %s)", model.version, previous)
            return ReloadResult(True, model.version, previous, "swapped")

    async def start(self) -> None:
        """Lifespan start: model from the store (if any), ``Service.start``, SIGHUP, shadow candidate.

        A store that cannot be read at start-up leaves the service not ready with
        that reason, rather than silently serving the configured directory.
        """
        startup_error = None
        try:
            await asyncio.to_thread(self.prepare)
        except Exception as exc:  # StoreError, botocore errors: reported by /health/ready
            startup_error = f"model store: {exc}"
            log.error("cannot fetch the model from the store: %s", exc)
        await self.service.start()
        if startup_error is not None:
            self.service.model_error = startup_error
        self._monitor(self.service.model)
        self.install_signal(asyncio.get_running_loop())
        if self.lifecycle.shadow_version:
            await self.start_shadow(self.lifecycle.shadow_version)
        if self.store is not None and not self.lifecycle.model_version and self.lifecycle.model_poll_seconds > 0:
            self._poller = asyncio.get_running_loop().create_task(self._poll(self.lifecycle.model_poll_seconds))
        s = self.service.settings
        if s.database_url and self.lifecycle.quality_interval_seconds > 0:
            from app.drift import QualityMonitor

            self.quality = QualityMonitor(s.database_url, s.database_schema, self.lifecycle.quality_days,
                                          self.lifecycle.quality_interval_seconds, self.dimensions or {})
            self.quality.start()

    async def start_shadow(self, version: str) -> bool:
        """Shadow-score ``version`` ('candidate' = the candidate pointer); False when it cannot be loaded."""
        from app.features import FEATURE_NAMES
        from app.shadow import ShadowScorer

        def load() -> ScoringModel:
            if self.store is None:
                raise StoreError("shadow scoring needs FRAUDSTACK_MODEL_STORE")
            name = self.store.read_pointer("candidate") if version == "candidate" else version
            if name is None:
                raise StoreError("the model store has no 'candidate' pointer")
            model = self._new_model(self.fetch(name))
            verify_model(model, FEATURE_NAMES)
            return model

        try:
            candidate = await asyncio.to_thread(load)
        except Exception as exc:
            log.error("shadow candidate %s not loaded: %s", version, exc)
            return False
        if self.shadow is not None:
            await self.shadow.stop()
        self.shadow = ShadowScorer(candidate, self.lifecycle.shadow_queue_size)
        self.shadow.start()
        self._set_observers()
        return True

    async def poll_once(self) -> ReloadResult | None:
        """Swap to the version the active pointer names if it changed; None when nothing to do."""
        assert self.store is not None
        try:
            target = await asyncio.to_thread(self.store.read_pointer, "active")
        except Exception as exc:  # store unreachable: keep serving, try again next time
            log.warning("active pointer not readable: %s", exc)
            return None
        if target is None or target == self.service.model.version or target == self._refused:
            return None
        result = await self.reload(target)
        self._refused = None if result.swapped else target
        return result

    async def _poll(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.poll_once()

    async def stop(self) -> None:
        """Lifespan stop: drain the shadow scorer, then ``Service.stop``."""
        if self._poller is not None:
            self._poller.cancel()
            try:
                await self._poller
            except asyncio.CancelledError:
                pass
        self.service.observers = []
        if self.quality is not None:
            await self.quality.stop()
        if self.shadow is not None:
            await self.shadow.stop()
        await self.service.stop()

    def install_signal(self, loop: asyncio.AbstractEventLoop) -> bool:
        """SIGHUP -> reload of the configured/active version. False where signals are unavailable."""
        def _on_hup() -> None:
            loop.create_task(self.reload())
        try:
            loop.add_signal_handler(signal.SIGHUP, _on_hup)
        except (NotImplementedError, RuntimeError, ValueError):
            return False
        return True


def check_admin_key(expected_hash: str | None, presented: str | None) -> None:
    """Raise unless ``presented`` hashes to the admin key (constant-time comparison)."""
    from app.errors import AppError, Unauthorized

    if not expected_hash:
        err = AppError("admin API disabled: FRAUDSTACK_ADMIN_KEY_HASH is not set", field="X-Admin-Key")
        err.status, err.code = 403, "forbidden"
        raise err
    if not presented or not hmac.compare_digest(hash_key(presented), expected_hash):
        raise Unauthorized("missing or wrong admin key", field="X-Admin-Key")


def require_literal_path(request: Request) -> None:
    """Answer 404, as for an unknown route, unless the request spelled the path literally.

    The Ingress keeps ``/admin`` off the load balancer with an ALB path rule, and AWS does
    not document that ALB path matching decodes percent-escapes, while uvicorn decodes the
    path before routing: ``/%61dmin/model/reload`` could slip past the rule and still reach
    this route. Refusing every encoded spelling means the route only answers a path that
    any upstream path filter sees as ``/admin/...`` (docs/operations.md, "Admin key").
    """
    from app.errors import NotFound

    raw = request.scope.get("raw_path")
    if raw is not None and raw.split(b"?", 1)[0] != request.scope["path"].encode():
        raise NotFound(f"{request.method} {raw.split(b'?', 1)[0].decode('latin-1')}: Not Found", field="path")


def install(app: Any, service: Any, lifecycle: LifecycleSettings | None = None, store: ModelStore | None = None) -> ModelManager:
    """Add the admin routes to the app and return the manager (call ``start`` from the lifespan)."""
    from app.errors import InvalidRequest

    lifecycle = lifecycle or load_lifecycle_settings()
    if store is None and lifecycle.model_store:
        store = open_store(lifecycle.model_store, lifecycle.aws_region)
    manager = ModelManager(service, lifecycle, store)

    @app.post("/admin/model/reload", tags=["operations"], summary="Verify and swap in a model version (admin key)")
    async def reload_model(request: Request) -> JSONResponse:
        require_literal_path(request)
        check_admin_key(lifecycle.admin_key_hash, request.headers.get("x-admin-key"))
        body = await request.body()
        version = None
        if body.strip():
            try:
                data = json.loads(body)
            except ValueError:
                raise InvalidRequest("body must be JSON: {\"version\": \"...\"} or empty", field="body") from None
            version = data.get("version") if isinstance(data, dict) else None
            if version is not None and (not isinstance(version, str) or not VERSION_RE.match(version)):
                raise InvalidRequest("version: must be a version name ([A-Za-z0-9_.-])", field="version")
        result = await manager.reload(version)
        return JSONResponse({"swapped": result.swapped, "version": result.version, "previous": result.previous,
                             "message": result.message}, status_code=200 if result.swapped else 409)

    app.state.model_manager = manager
    return manager


def promote(store: ModelStore, version: str, work_dir: Path) -> dict[str, Any]:
    """Verify ``version`` exactly as the service will, then make it the active one (remembering the previous)."""
    from app.features import FEATURE_NAMES

    model = ScoringModel(store.download(_check_version(version), work_dir))
    verify_model(model, FEATURE_NAMES)
    if model.version != version:
        raise ModelLoadError(f"models/{version}/model.json names version {model.version!r}")
    current = store.read_pointer("active")
    store.write_pointer("active", version, model.sha256, previous=current if current != version else None)
    return {"active": version, "previous": current, "sha256": model.sha256}


def cli(argv: list[str] | None = None) -> int:
    """``python -m app.lifecycle status|promote|rollback --store URI``: move the active pointer safely."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m app.lifecycle", description="Model store pointers")
    parser.add_argument("--store", required=True, help="s3://bucket[/prefix] or a local directory")
    parser.add_argument("--region", default=None)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="show the active and candidate pointers")
    prom = sub.add_parser("promote", help="verify a version and make it active")
    which = prom.add_mutually_exclusive_group(required=True)
    which.add_argument("--version")
    which.add_argument("--candidate", action="store_true", help="the version the candidate pointer names")
    sub.add_parser("rollback", help="make the active pointer's previous version active again")
    args = parser.parse_args(argv)
    try:
        store = open_store(args.store, args.region)
        if args.command == "status":
            print(json.dumps({name: store.pointer_doc(name) for name in POINTERS}, indent=2))
            return 0
        if args.command == "promote":
            version = store.read_pointer("candidate") if args.candidate else args.version
            if version is None:
                raise StoreError("the store has no 'candidate' pointer")
        else:
            doc = store.pointer_doc("active")
            version = (doc or {}).get("previous")
            if not version:
                raise StoreError("the active pointer records no previous version to roll back to")
        with tempfile.TemporaryDirectory() as tmp:
            result = promote(store, version, Path(tmp))
    except (StoreError, ModelLoadError) as exc:
        print(f"{args.command} refused: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


__all__ = ["LifecycleSettings", "LocalModelStore", "ModelManager", "S3ModelStore", "StoreError", "check_admin_key",
           "hash_key", "install", "open_store", "promote", "require_literal_path", "verify_model"]


if __name__ == "__main__":
    raise SystemExit(cli())
