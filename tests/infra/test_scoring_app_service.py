"""The service-side pieces the deployment relies on: the migrations entry point the Job
runs (``python -m app.migrate``) and the GPU variant's CUDA-or-CPU provider choice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import psycopg
import pytest

from app import model as model_module
from app.model import ScoringModel, execution_providers

ROOT = Path(__file__).resolve().parents[2]
PG = "postgresql://postgres@127.0.0.1:5432/test"
SCHEMA = "k8sapp_migrate_test"


def _drop_schema() -> None:
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


def _migrate(**env: str) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "FRAUDSTACK_ENVIRONMENT": "development"}
    return subprocess.run([sys.executable, "-m", "app.migrate"], cwd=ROOT, env={**base, **env},
                          capture_output=True, text=True, timeout=60)


def test_migrate_applies_every_migration_once_and_is_idempotent():
    from app.audit import PG_MIGRATIONS

    _drop_schema()
    try:
        for _ in range(2):  # a second Job run (a retried rollout) changes nothing
            result = _migrate(FRAUDSTACK_DATABASE_URL=PG, FRAUDSTACK_DATABASE_SCHEMA=SCHEMA)
            assert result.returncode == 0, result.stderr
            assert f"audit schema {SCHEMA} is current" in result.stderr
        with psycopg.connect(PG) as conn:
            versions = [v for (v,) in conn.execute(f"SELECT version FROM {SCHEMA}.schema_migrations ORDER BY version")]
        assert versions == list(range(1, len(PG_MIGRATIONS) + 1))
    finally:
        _drop_schema()


def test_migrate_without_a_database_names_the_setting():
    result = _migrate()
    assert result.returncode == 2
    assert result.stderr.strip() == "FRAUDSTACK_DATABASE_URL: not set; there is no PostgreSQL database to migrate"


def test_migrate_against_an_unreachable_database_fails_in_one_line():
    result = _migrate(FRAUDSTACK_DATABASE_URL="postgresql://postgres@127.0.0.1:1/test", FRAUDSTACK_DATABASE_SCHEMA=SCHEMA)
    assert result.returncode == 1
    assert result.stderr.startswith("migration failed: OperationalError")
    assert "Traceback" not in result.stderr


def test_providers_prefer_cuda_when_the_build_has_it():
    assert execution_providers(["CUDAExecutionProvider", "CPUExecutionProvider"]) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert execution_providers(["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert execution_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert execution_providers([]) == ["CPUExecutionProvider"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from tests.service.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("model"))


def test_model_loads_on_the_cpu_here(model_dir):
    m = ScoringModel(model_dir)
    m.load()
    assert m.provider == "CPUExecutionProvider"


def test_cuda_failure_falls_back_to_the_cpu(model_dir, monkeypatch, caplog):
    real = ort.InferenceSession
    calls = []

    def session(path, sess_options=None, providers=None):
        calls.append(list(providers))
        if "CUDAExecutionProvider" in providers:
            raise RuntimeError("libcudart.so.12: cannot open shared object file")
        return real(path, sess_options=sess_options, providers=providers)

    monkeypatch.setattr(model_module.ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(model_module.ort, "InferenceSession", session)
    m = ScoringModel(model_dir)
    with caplog.at_level("WARNING", logger="fraudstack.model"):
        m.load()
    assert calls == [["CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]]
    assert m.provider == "CPUExecutionProvider"
    assert "CUDA execution provider unavailable (libcudart.so.12" in caplog.text


def test_cuda_libraries_are_preloaded_once_before_the_cuda_session(model_dir, monkeypatch, caplog):
    """The GPU image's CUDA/cuDNN come as wheels in site-packages: load them before asking for CUDA."""
    real = ort.InferenceSession
    events = []

    def preload():
        events.append("preload")
        print("Failed to load libcudnn.so.9: not found")  # ORT reports by print

    def session(path, sess_options=None, providers=None):
        events.append(list(providers))
        return real(path, sess_options=sess_options, providers=["CPUExecutionProvider"])

    model_module.preload_cuda_libraries.cache_clear()
    monkeypatch.setattr(model_module.ort, "preload_dlls", preload, raising=False)
    monkeypatch.setattr(model_module.ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(model_module.ort, "InferenceSession", session)
    try:
        with caplog.at_level("WARNING", logger="fraudstack.model"):
            ScoringModel(model_dir).load()
            ScoringModel(model_dir).load()
    finally:
        model_module.preload_cuda_libraries.cache_clear()
    both = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert events == ["preload", both, both]
    assert "CUDA library preload: Failed to load libcudnn.so.9: not found" in caplog.text


def test_a_failing_preload_is_logged_and_the_session_still_tries(model_dir, monkeypatch, caplog):
    def preload():
        raise RuntimeError("Invalid parameter of directory=None. The directory does not exist!")

    model_module.preload_cuda_libraries.cache_clear()
    monkeypatch.setattr(model_module.ort, "preload_dlls", preload, raising=False)
    monkeypatch.setattr(model_module.ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    try:
        with caplog.at_level("WARNING", logger="fraudstack.model"):
            m = ScoringModel(model_dir)
            m.load()
    finally:
        model_module.preload_cuda_libraries.cache_clear()
    assert "CUDA libraries not preloaded (Invalid parameter of directory=None" in caplog.text
    assert m.provider == "CPUExecutionProvider"


def test_a_cpu_build_never_preloads(model_dir, monkeypatch):
    calls = []
    model_module.preload_cuda_libraries.cache_clear()
    monkeypatch.setattr(model_module.ort, "preload_dlls", lambda: calls.append(1), raising=False)
    monkeypatch.setattr(model_module.ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    ScoringModel(model_dir).load()
    assert calls == []


# --------------------------------------------------------------------------- credentials

def _secrets_client(values: dict[str, str]):
    import boto3
    from moto import mock_aws

    mock = mock_aws()
    mock.start()
    client = boto3.client("secretsmanager", region_name="eu-west-1", aws_access_key_id="test-key-not-a-secret",
                          aws_secret_access_key="test-key-not-a-secret")
    arns = {name: client.create_secret(Name=name, SecretString=value)["ARN"] for name, value in values.items()}
    return mock, client, arns


def test_credentials_fill_the_urls_and_the_hmac_key_from_secrets_manager():
    from app.credentials import apply

    mock, client, arns = _secrets_client({
        "db": '{"username": "fraudstack_admin", "password": "p@ss/word:test-not-a-secret"}',
        "redis": "token-not-a-secret-0123456789",
        "hmac": "hmac-test-key-not-a-secret-0123456789abcdef",
    })
    try:
        environ = {
            "FRAUDSTACK_DATABASE_URL": "postgresql://fraudstack_admin@db.example:5432/fraudstack?sslmode=require",
            "FRAUDSTACK_DATABASE_SECRET_ID": arns["db"],
            "FRAUDSTACK_REDIS_URL": "rediss://cache.example:6379/0",
            "FRAUDSTACK_REDIS_AUTH_SECRET_ID": arns["redis"],
            "FRAUDSTACK_HMAC_SECRET_ID": arns["hmac"],
        }
        assert apply(environ, client) == ["FRAUDSTACK_DATABASE_URL", "FRAUDSTACK_HMAC_SECRET", "FRAUDSTACK_REDIS_URL"]
        assert environ["FRAUDSTACK_DATABASE_URL"] == (
            "postgresql://fraudstack_admin:p%40ss%2Fword%3Atest-not-a-secret@db.example:5432/fraudstack?sslmode=require")
        assert environ["FRAUDSTACK_REDIS_URL"] == "rediss://:token-not-a-secret-0123456789@cache.example:6379/0"
        assert environ["FRAUDSTACK_HMAC_SECRET"] == "hmac-test-key-not-a-secret-0123456789abcdef"
        # The URL the service builds its connection from parses back to the same password.
        from urllib.parse import unquote, urlsplit

        assert unquote(urlsplit(environ["FRAUDSTACK_DATABASE_URL"]).password) == "p@ss/word:test-not-a-secret"
        # Explicit values win, and nothing is read twice.
        assert apply(environ, client) == []
    finally:
        mock.stop()


def test_credentials_errors_name_the_variable_and_never_a_value():
    from app.credentials import CredentialsError, apply

    mock, client, arns = _secrets_client({"db": "not json: hunter2-not-a-secret"})
    try:
        environ = {"FRAUDSTACK_DATABASE_URL": "postgresql://u@db:5432/x", "FRAUDSTACK_DATABASE_SECRET_ID": arns["db"]}
        with pytest.raises(CredentialsError) as err:
            apply(environ, client)
        assert str(err.value) == "FRAUDSTACK_DATABASE_SECRET_ID: the secret is not JSON with a password"
        missing = {"FRAUDSTACK_REDIS_URL": "rediss://c:6379/0", "FRAUDSTACK_REDIS_AUTH_SECRET_ID": "fraudstack/none"}
        with pytest.raises(CredentialsError) as err:
            apply(missing, client)
        assert str(err.value) == "FRAUDSTACK_REDIS_AUTH_SECRET_ID: cannot read secret 'fraudstack/none': ResourceNotFoundException"
    finally:
        mock.stop()


def test_no_secret_ids_means_no_aws_call():
    from app.credentials import resolve

    class NoCalls:
        def get_secret_value(self, **_):
            raise AssertionError("no AWS call expected")

    assert resolve({"FRAUDSTACK_DATABASE_URL": "postgresql://u@db/x"}, NoCalls()) == {}


def test_the_admin_key_secret_becomes_the_hash_the_admin_route_checks(monkeypatch):
    """The operators' admin key is read through the role at start-up; the service keeps
    only its SHA-256 (FRAUDSTACK_ADMIN_KEY_HASH), never the key."""
    from app.credentials import apply
    from app.lifecycle import check_admin_key, hash_key, load_lifecycle_settings

    key = "admin-test-key-not-a-secret-0123456789abcdef"
    mock, client, arns = _secrets_client({"admin": key + "\n"})
    try:
        environ = {"FRAUDSTACK_ADMIN_KEY_SECRET_ID": arns["admin"]}
        assert apply(environ, client) == ["FRAUDSTACK_ADMIN_KEY_HASH"]
        assert environ == {"FRAUDSTACK_ADMIN_KEY_SECRET_ID": arns["admin"],
                           "FRAUDSTACK_ADMIN_KEY_HASH": hash_key(key)}
        assert key not in environ.values()
        # What the lifecycle settings load from the environment, and what the admin route then accepts.
        monkeypatch.setenv("FRAUDSTACK_ADMIN_KEY_HASH", environ["FRAUDSTACK_ADMIN_KEY_HASH"])
        settings = load_lifecycle_settings()
        assert settings.admin_key_hash == hash_key(key)
        check_admin_key(settings.admin_key_hash, key)
        with pytest.raises(Exception) as err:
            check_admin_key(settings.admin_key_hash, "another-key-not-a-secret")
        assert getattr(err.value, "status", None) == 401
        # An explicit hash wins and nothing is read.
        explicit = {"FRAUDSTACK_ADMIN_KEY_SECRET_ID": arns["admin"], "FRAUDSTACK_ADMIN_KEY_HASH": "0" * 64}
        assert apply(explicit, client) == [] and explicit["FRAUDSTACK_ADMIN_KEY_HASH"] == "0" * 64
    finally:
        mock.stop()


def test_an_empty_admin_key_secret_stops_the_start():
    from app.credentials import CredentialsError, apply

    mock, client, arns = _secrets_client({"admin": "  \n"})
    try:
        with pytest.raises(CredentialsError) as err:
            apply({"FRAUDSTACK_ADMIN_KEY_SECRET_ID": arns["admin"]}, client)
        assert str(err.value) == "FRAUDSTACK_ADMIN_KEY_SECRET_ID: the secret is empty"
    finally:
        mock.stop()


def test_a_spooled_decision_takes_about_1_6_kb(tmp_path):
    """What docs/deploy-service.md's spool capacities are computed from: one decision of a
    58-feature model as the service spools it (app/service.py ``_audit``), in a 500-record batch."""
    import random

    from app.audit import Spool
    from app.features import FEATURE_NAMES

    rng = random.Random(8)
    records = [{
        "transaction_id": f"txn-{i:012d}", "request_hash": f"{i:064x}", "received_at": "2026-11-22T10:00:00.123456+00:00",
        "api_key_id": "payment-gateway", "model_version": "20261122032244-fe4fea2a", "score": round(rng.random(), 6),
        "risk_score": rng.randrange(1000), "decision": "approve", "degraded": False,
        "reasons": [{"feature": FEATURE_NAMES[j], "value": round(rng.random() * 100, 4), "impact": round(rng.random() / 100, 6)}
                    for j in range(3)],
        "features": [rng.random() * 1000 for _ in FEATURE_NAMES], "latency_ms": 4.032,
    } for i in range(500)]
    path = Spool(tmp_path).append(records, [])
    per_record = path.stat().st_size / len(records)
    assert len(FEATURE_NAMES) == 58
    assert 1500 <= per_record <= 1700, per_record
