"""Command line: ``python -m app serve [--host 127.0.0.1] [--port 8080] [--workers N]``.

On a fresh machine with nothing configured it still starts: it builds the demo
model into FRAUDSTACK_DATA_DIR/demo-model (once), uses the in-process velocity
store and a SQLite audit log, accepts the development key, and says so once.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

from app.settings import DEV_API_KEY, Settings, SettingsError, load_settings

#: How long SIGTERM waits for in-flight requests before the lifespan shutdown (the audit
#: flush) runs; the pod's termination grace period budgets it
#: (components/scoring_app_specs.py ``IN_FLIGHT_SECONDS``).
GRACEFUL_SHUTDOWN_SECONDS = 30


def ensure_model(settings: Settings) -> tuple[Path, bool]:
    """The model directory to serve, building the demo model when none is configured."""
    if settings.model_dir is not None:
        return settings.model_dir, False
    target = settings.data_dir / "demo-model"
    if not (target / "model.json").is_file():
        from app.training.demo import build_demo_model

        print(f"fraudstack: building the demo model into {target} (first start only) ...", file=sys.stderr, flush=True)
        target = Path(build_demo_model(target))
    return target, True


def notices(settings: Settings, demo: bool, workers: int) -> list[str]:
    """What runs on fallbacks, for the single start-up message."""
    out = []
    if demo:
        out.append(f"model: DEMO model in {settings.data_dir / 'demo-model'} (set FRAUDSTACK_MODEL_DIR for a real one)")
    if not settings.redis_url:
        extra = "; each worker keeps its own history" if workers > 1 else ""
        out.append(f"velocity: in-process store (set FRAUDSTACK_REDIS_URL for Redis){extra}")
    if not settings.database_url:
        out.append(f"audit: SQLite at {settings.data_dir / 'audit.sqlite3'} (set FRAUDSTACK_DATABASE_URL for PostgreSQL)")
    if settings.uses_dev_key:
        out.append(f"auth: development key '{DEV_API_KEY}' accepted (set FRAUDSTACK_API_KEYS)")
    if not settings.bedrock_model_id:
        out.append("explanations: template narratives (set FRAUDSTACK_BEDROCK_REGION and FRAUDSTACK_BEDROCK_MODEL_ID for Bedrock)")
    return out


def serve(args: argparse.Namespace) -> int:
    """Run uvicorn (uvloop + httptools) with the app factory."""
    from app.credentials import CredentialsError, apply as apply_credentials

    try:
        # In AWS: database password, Redis token and HMAC key from Secrets Manager (by ARN).
        apply_credentials()
    except CredentialsError as exc:
        print(f"fraudstack: {exc}", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
        from app.lifecycle import load_lifecycle_settings

        store = load_lifecycle_settings().model_store
    except SettingsError as exc:
        print(f"fraudstack: invalid configuration: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if store is None:  # with a model store the version comes from the store (app.lifecycle), no demo model
        model_dir, demo = ensure_model(settings)
        os.environ["FRAUDSTACK_MODEL_DIR"] = str(model_dir)
    else:
        demo = False
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="fraudstack-metrics-")
    for line in notices(settings, demo, args.workers):
        print(f"fraudstack: {line}", file=sys.stderr)
    print(f"fraudstack: serving on http://{args.host}:{args.port} ({args.workers} worker(s)); OpenAPI at /docs",
          file=sys.stderr, flush=True)
    import signal

    import uvicorn

    # uvicorn drains in-flight requests and runs the lifespan shutdown (the audit flush)
    # on SIGTERM, then re-raises the signal to the previous handler. Make that handler
    # a no-op so a graceful stop exits 0 instead of dying by the signal (orchestrators
    # read -15 as a crash).
    signal.signal(signal.SIGTERM, lambda *_: None)
    uvicorn.run("app.main:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                loop="uvloop", http="httptools", access_log=False,  # the access log would carry client IPs
                log_level=settings.log_level.lower(), timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS, server_header=False)
    return 0


def build_demo(args: argparse.Namespace) -> int:
    """Build the demo model into a directory (used by the Dockerfile)."""
    from app.training.demo import build_demo_model

    print(build_demo_model(Path(args.out)))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m app", description="fraudstack scoring service")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the HTTP service")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--workers", type=int, default=1)
    s.set_defaults(func=serve)
    b = sub.add_parser("build-demo-model", help="build the demo model into a directory")
    b.add_argument("out")
    b.set_defaults(func=build_demo)
    args = parser.parse_args(argv)
    if getattr(args, "workers", 1) < 1:
        parser.error("--workers must be at least 1")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
