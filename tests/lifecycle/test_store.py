"""Model stores: S3 (moto) and local; pointers, downloads, errors naming what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from app.lifecycle import LocalModelStore, S3ModelStore, StoreError, open_store
from app.model import file_sha256

BUCKET = "fraudstack-staging-models-test"


@pytest.fixture()
def s3() -> object:
    with mock_aws():
        client = boto3.client("s3", region_name="eu-west-1")
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        yield client


def test_s3_store_round_trip(s3: object, model_dirs: dict[str, Path], tmp_path: Path) -> None:
    store = open_store(f"s3://{BUCKET}/fraud", client=s3)
    assert isinstance(store, S3ModelStore) and (store.bucket, store.prefix) == (BUCKET, "fraud")
    assert store.read_pointer("active") is None
    store.upload("v1", model_dirs["v1"])
    sha = file_sha256(model_dirs["v1"] / "model.onnx")
    store.write_pointer("active", "v1", sha)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"])  # type: ignore[attr-defined]
    assert keys == ["fraud/models/v1/model.json", "fraud/models/v1/model.onnx", "fraud/pointers/active"]
    pointer = json.loads(s3.get_object(Bucket=BUCKET, Key="fraud/pointers/active")["Body"].read())  # type: ignore[attr-defined]
    assert pointer == {"version": "v1", "sha256": sha}
    assert store.read_pointer("active") == "v1"
    got = store.download("v1", tmp_path / "dl")
    assert file_sha256(got / "model.onnx") == sha
    assert (got / "model.json").read_bytes() == (model_dirs["v1"] / "model.json").read_bytes()


def test_s3_store_errors_name_the_object(s3: object, tmp_path: Path) -> None:
    store = open_store(f"s3://{BUCKET}", client=s3)
    with pytest.raises(StoreError, match=rf"s3://{BUCKET}/models/v9/model.onnx: NoSuchKey"):
        store.download("v9", tmp_path / "dl")
    s3.put_object(Bucket=BUCKET, Key="pointers/active", Body=b"not json")  # type: ignore[attr-defined]
    with pytest.raises(StoreError, match=rf"s3://{BUCKET}/pointers/active: not a pointer document"):
        store.read_pointer("active")
    with pytest.raises(StoreError, match="pointer 'live' is not one of"):
        store.read_pointer("live")
    with pytest.raises(StoreError, match="model version '../x' is not a valid name"):
        store.upload("../x", tmp_path)


def test_local_store_and_uri_errors(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "st"))
    assert isinstance(store, LocalModelStore)
    assert store.read_pointer("candidate") is None
    with pytest.raises(StoreError, match="names no bucket"):
        open_store("s3:///prefix")


def test_promote_and_rollback_cli(model_dirs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from app.lifecycle import cli

    store = LocalModelStore(tmp_path / "st")
    for v, d in model_dirs.items():
        store.upload(v, d)
    assert cli(["--store", str(store.root), "promote", "--version", "v1"]) == 0
    store.write_pointer("candidate", "v2", file_sha256(model_dirs["v2"] / "model.onnx"))
    assert cli(["--store", str(store.root), "promote", "--candidate"]) == 0
    assert store.pointer_doc("active") == {"version": "v2", "sha256": file_sha256(model_dirs["v2"] / "model.onnx"),
                                           "previous": "v1"}
    capsys.readouterr()
    assert cli(["--store", str(store.root), "rollback"]) == 0
    assert json.loads(capsys.readouterr().out) == {"active": "v1", "previous": "v2",
                                                    "sha256": file_sha256(model_dirs["v1"] / "model.onnx")}
    # a tampered version is never promoted; the pointer stays where it was
    onnx = store.root / "models" / "v2" / "model.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    assert cli(["--store", str(store.root), "promote", "--version", "v2"]) == 2
    assert "promote refused: " in capsys.readouterr().err and store.read_pointer("active") == "v1"
    assert cli(["--store", str(tmp_path / "empty"), "rollback"]) == 2
    assert "no previous version" in capsys.readouterr().err


@pytest.mark.parametrize("env, message", [
    ({"FRAUDSTACK_ADMIN_KEY_HASH": "not-a-digest"}, "FRAUDSTACK_ADMIN_KEY_HASH: String should match pattern"),
    ({"FRAUDSTACK_MODEL_VERSION": "../v1"}, "FRAUDSTACK_MODEL_VERSION: String should match pattern"),
    ({"FRAUDSTACK_DRIFT_WINDOW": "10"}, "FRAUDSTACK_DRIFT_WINDOW: Input should be greater than or equal to 100"),
])
def test_bad_lifecycle_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str) -> None:
    from app.lifecycle import load_lifecycle_settings
    from app.settings import SettingsError

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SettingsError) as err:
        load_lifecycle_settings()
    assert str(err.value).startswith(message)
    assert "not-a-digest" not in str(err.value) and "../v1" not in str(err.value)


def test_serve_refuses_a_bad_lifecycle_setting_before_starting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from app.__main__ import main

    monkeypatch.setenv("FRAUDSTACK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FRAUDSTACK_ADMIN_KEY_HASH", "not-a-digest")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "fraudstack: invalid configuration: FRAUDSTACK_ADMIN_KEY_HASH: String should match pattern" in err
    assert not (tmp_path / "demo-model").exists()
