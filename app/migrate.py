"""``python -m app.migrate``: apply the audit database migrations, then exit.

The Kubernetes deployment runs this as a Job before each rollout, so schema changes
happen once, under one advisory lock, before any new pod serves. The service still
migrates on its first connection (idempotent), which keeps a bare ``python -m app
serve`` working without this step.

Exit codes: 0 migrated (or already current), 1 the database could not be migrated,
2 the settings are invalid, a credential secret is unreadable, or no PostgreSQL database
is configured. In AWS the password comes from FRAUDSTACK_DATABASE_SECRET_ID
(app/credentials.py).
"""

from __future__ import annotations

import asyncio
import logging
import sys

from app.audit import PostgresSink
from app.credentials import CredentialsError
from app.credentials import apply as apply_credentials
from app.settings import SettingsError, load_settings

log = logging.getLogger("fraudstack.migrate")


async def migrate(database_url: str, schema: str, connect_timeout: float = 10.0) -> None:
    """Connect once (which applies any pending migration) and close."""
    sink = PostgresSink(database_url, schema, connect_timeout=connect_timeout)
    try:
        await sink._connection()  # noqa: SLF001 - connecting is what runs the migrations
    finally:
        await sink.close()


def main() -> int:
    """Entry point; returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    try:
        apply_credentials()
        settings = load_settings()
    except (SettingsError, CredentialsError) as exc:
        print(f"settings: {exc}", file=sys.stderr)
        return 2
    if not settings.database_url:
        print("FRAUDSTACK_DATABASE_URL: not set; there is no PostgreSQL database to migrate", file=sys.stderr)
        return 2
    try:
        asyncio.run(migrate(settings.database_url, settings.database_schema))
    except Exception as exc:  # noqa: BLE001 - any failure is one line naming its type, never the URL
        print(f"migration failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}", file=sys.stderr)
        return 1
    log.info("audit schema %s is current", settings.database_schema)
    return 0


if __name__ == "__main__":
    sys.exit(main())
