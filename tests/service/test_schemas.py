"""Request schema: strict types, ISO codes, PAN refusal without echo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.errors import MalformedJSON, from_validation_error
from app.schemas import Feedback, Transaction, contains_pan, luhn_valid

EXAMPLE = json.loads((Path(__file__).parents[2] / "app" / "examples" / "transaction.json").read_text())


def _errors(payload: dict) -> list[dict]:
    with pytest.raises(ValidationError) as info:
        Transaction.model_validate_json(json.dumps(payload))
    return info.value.errors(include_input=False, include_context=False, include_url=False)


def test_example_is_valid_and_normalised() -> None:
    txn = Transaction.model_validate_json(json.dumps(EXAMPLE))
    raw = txn.raw()
    assert raw["amount"] == 129.9
    assert raw["timestamp"].isoformat() == "2026-11-21T14:03:07+00:00"
    assert raw["ip_address"] == "203.0.113.7"


@pytest.mark.parametrize("digits,expected", [("4111111111111111", True), ("4111111111111112", False),
                                             ("79927398713", True), ("5500005555555559", True)])
def test_luhn(digits: str, expected: bool) -> None:
    assert luhn_valid(digits) is expected


@pytest.mark.parametrize("text,expected", [
    ("4111111111111111", True), ("4111 1111 1111 1111", True), ("4111-1111-1111-1111", True),
    ("tok_4111111111111111_x", True), ("4111111111111112", False), ("txn-000001", False),
    ("411111111111", False),  # 12 digits: too short for a PAN
    ("41111111111111111111111", False),  # 23 digits: an id, not a card
])
def test_contains_pan(text: str, expected: bool) -> None:
    assert contains_pan(text) is expected


def _contains_pan_reference(text: str) -> bool:
    """The definition, spelled out: every maximal run of digits with single space/dash separators."""
    import re

    for match in re.finditer(r"\d(?:[ -]?\d)+", text):
        digits = match.group().replace(" ", "").replace("-", "")
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            return True
    return False


@st.composite
def _card_like(draw: st.DrawFn) -> str:
    """A 13-19 digit run, Luhn-valid (check digit computed) or not, grouped as people type it."""
    body = draw(st.text(alphabet="0123456789", min_size=12, max_size=18))
    check = next(d for d in "0123456789" if luhn_valid(body + d))
    digits = body + (check if draw(st.booleans()) else draw(st.sampled_from("0123456789")))
    sep = draw(st.sampled_from(["", " ", "-"]))
    return sep.join(digits[i:i + 4] for i in range(0, len(digits), 4))


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.one_of(st.text(alphabet="0123456789 -x", max_size=14), _card_like()), max_size=5).map("".join))
def test_contains_pan_matches_its_definition(text: str) -> None:
    assert contains_pan(text) is _contains_pan_reference(text)


@pytest.mark.parametrize("field", ["card_token", "customer_id", "merchant_id", "device_id", "transaction_id", "account_id"])
def test_pan_in_any_field_is_refused_naming_the_field(field: str) -> None:
    payload = {**EXAMPLE, field: "4111111111111111"}
    errors = _errors(payload)
    assert [e["loc"][0] for e in errors] == [field]
    assert "card number" in errors[0]["msg"]
    assert "4111" not in json.dumps(errors)


def test_pan_in_metadata_is_refused() -> None:
    errors = _errors({**EXAMPLE, "metadata": {"note": "card 5500 0055 5555 5559"}})
    assert errors[0]["loc"][:2] == ("metadata", "note")


@pytest.mark.parametrize("field,value,error_type", [
    ("amount", -5, "greater_than"), ("amount", 0, "greater_than"), ("amount", True, "decimal_type"),
    ("amount", "12.345678", "decimal_max_places"), ("currency", "EURO", "string_too_long"), ("currency", "XYZ", "value_error"),
    ("merchant_country", "XX", "value_error"), ("card_country", "de", "value_error"), ("ip_country", "ZZ", "value_error"),
    ("mcc", 5732, "string_type"), ("mcc", "57a2", "string_pattern_mismatch"), ("channel", "phone", "literal_error"),
    ("transaction_id", 17, "string_type"), ("timestamp", "2026-11-21T14:03:07", "value_error"),
    ("timestamp", "yesterday", "datetime_parsing"), ("ip_address", "300.1.1.1", "value_error"),
])
def test_bad_values_name_the_field(field: str, value: object, error_type: str) -> None:
    errors = _errors({**EXAMPLE, field: value})
    assert errors[0]["loc"][0] == field
    assert any(e["type"] == error_type for e in errors)


def test_missing_and_unknown_fields() -> None:
    payload = {k: v for k, v in EXAMPLE.items() if k != "amount"}
    assert [(e["loc"], e["type"]) for e in _errors(payload)] == [(("amount",), "missing")]
    assert [(e["loc"], e["type"]) for e in _errors({**EXAMPLE, "cvv": "123"})] == [(("cvv",), "extra_forbidden")]


def test_malformed_json_maps_to_400() -> None:
    with pytest.raises(ValidationError) as info:
        Transaction.model_validate_json(b'{"transaction_id": ')
    err = from_validation_error(info.value)
    assert isinstance(err, MalformedJSON) and err.status == 400 and err.field == "body"


def test_feedback_outcomes() -> None:
    fb = Feedback.model_validate_json('{"transaction_id": "txn-1", "outcome": "chargeback"}')
    assert fb.outcome == "chargeback" and fb.reported_at is None
    with pytest.raises(ValidationError):
        Feedback.model_validate_json('{"transaction_id": "txn-1", "outcome": "maybe"}')
