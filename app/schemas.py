"""Request and response schemas (strict pydantic).

The transaction fields are the contract in docs/ARCHITECTURE.md. Validation is
strict (no silent coercion of numbers into strings or strings into booleans);
``amount`` also accepts a JSON string so that decimals survive clients whose JSON
encoders use binary floats. A Luhn-valid 13-19 digit card number anywhere in a
string field is refused (we never store or log a PAN): the error names the field
and never echoes the value.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal
from ipaddress import ip_address
from typing import Annotated, Any, Literal

import pycountry
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator

_CURRENCIES = frozenset(c.alpha_3 for c in pycountry.currencies)
_COUNTRIES = frozenset(c.alpha_2 for c in pycountry.countries)
# Runs of at least 13 digits possibly separated by single spaces or dashes, as people
# type card numbers. Greedy from the leftmost digit, so each match is a whole run (as
# with any run length, then filtering); shorter runs, the usual case, never reach Python.
_DIGIT_RUN = re.compile(r"\d(?:[ -]?\d){12,}")


def luhn_valid(digits: str) -> bool:
    """Luhn checksum of a string of digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def contains_pan(text: str) -> bool:
    """True when ``text`` holds a Luhn-valid run of 13-19 digits (spaces or dashes allowed)."""
    if len(text) < 13:
        return False
    for match in _DIGIT_RUN.finditer(text):
        digits = match.group().replace(" ", "").replace("-", "")
        # Runs longer than 19 digits are ids, not card numbers; a PAN glued to other
        # digits cannot be told apart from one, so only whole runs are checked.
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            return True
    return False


def _no_pan(value: str) -> str:
    if contains_pan(value):
        raise ValueError("looks like a clear-text card number (PAN); send a token instead")
    return value


def _currency(value: str) -> str:
    if value not in _CURRENCIES:
        raise ValueError("not an ISO 4217 currency code")
    return value


def _ip(value: str) -> str:
    try:
        return str(ip_address(value))
    except ValueError:
        raise ValueError("not an IPv4 or IPv6 address") from None


def _country(value: str) -> str:
    if value not in _COUNTRIES:
        raise ValueError("not an ISO 3166-1 alpha-2 country code")
    return value


Token = Annotated[str, StringConstraints(min_length=1, max_length=128), AfterValidator(_no_pan)]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$"), AfterValidator(_no_pan)]
Currency = Annotated[str, StringConstraints(min_length=3, max_length=3), AfterValidator(_currency)]
Country = Annotated[str, StringConstraints(min_length=2, max_length=2), AfterValidator(_country)]
IPAddress = Annotated[str, StringConstraints(max_length=64), AfterValidator(_ip)]
MetaValue = Annotated[str, StringConstraints(max_length=256), AfterValidator(_no_pan)]
MetaKey = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_no_pan)]


class Transaction(BaseModel):
    """One payment to score."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True,
                              json_schema_extra={"examples": [{
                                  "transaction_id": "txn-000001", "timestamp": "2026-11-21T14:03:07Z",
                                  "amount": "129.90", "currency": "EUR", "card_token": "ctok_8f2a41c9",
                                  "customer_id": "cust_1842", "merchant_id": "m_4471", "mcc": "5732",
                                  "merchant_country": "DE", "card_country": "DE", "channel": "online",
                                  "device_id": "dev_7c1e", "ip_address": "203.0.113.7", "ip_country": "DE"}]})

    transaction_id: Identifier = Field(description="Unique per transaction; retries reuse it.")
    timestamp: datetime = Field(description="Event time, ISO 8601 with a UTC offset.")
    amount: Decimal = Field(gt=0, max_digits=18, decimal_places=4, description="Positive amount in `currency`.")
    currency: Currency = Field(description="ISO 4217 code, e.g. EUR.")
    card_token: Token = Field(description="Card token (never a card number).")
    customer_id: Token
    account_id: Token | None = Field(None, description="Account token, optional.")
    merchant_id: Token
    mcc: Annotated[str, StringConstraints(pattern=r"^\d{4}$")] = Field(description="Merchant category code, 4 digits.")
    merchant_country: Country
    card_country: Country = Field(description="Issuing country.")
    channel: Literal["card_present", "online"]
    device_id: Token | None = None
    ip_address: IPAddress | None = Field(None, description="IPv4 or IPv6 address of the client.")
    ip_country: Country | None = Field(None, description="Country of the IP address, resolved upstream.")
    metadata: dict[MetaKey, MetaValue] | None = Field(None, max_length=32, description="Free-form string attributes (stored in the audit trail, not used by the model).")

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must carry a UTC offset, e.g. 2026-11-21T14:03:07Z")
        return value.astimezone(timezone.utc)

    def raw(self) -> dict[str, Any]:
        """Plain dict of the raw fields, the form the feature code consumes."""
        d = self.__dict__.copy()
        d["amount"] = float(self.amount)
        return d


class BatchRequest(BaseModel):
    """Many transactions scored as one model batch."""

    model_config = ConfigDict(strict=True, extra="forbid")
    transactions: list[Transaction] = Field(min_length=1)


class Reason(BaseModel):
    """One feature's contribution: the score change when it is replaced by its reference value."""

    feature: str
    value: float
    impact: float


class ScoreResponse(BaseModel):
    """Decision for one transaction."""

    transaction_id: str
    score: float = Field(description="Calibrated probability of fraud, 0-1.")
    risk_score: int = Field(description="0-999 on a fixed log scale of the score (app.risk.risk_score): 400 = 1 in 1,000, 600 = 1 in 100, 800 = 1 in 10.")
    decision: Literal["approve", "review", "decline"]
    reasons: list[Reason]
    model_version: str
    degraded: bool = Field(description="True when velocity features could not be read.")
    narrative: str | None = Field(None, description="For review decisions: an analyst narrative (Bedrock or template).")
    narrative_source: Literal["bedrock", "template"] | None = None
    timing_ms: dict[str, float]


class BatchResponse(BaseModel):
    """Decisions for a batch, in request order."""

    results: list[ScoreResponse]
    model_version: str
    timing_ms: dict[str, float]


class Feedback(BaseModel):
    """Confirmed outcome of a transaction, stored for retraining and monitoring."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    transaction_id: Identifier
    outcome: Literal["fraud", "chargeback", "legitimate"]
    reported_at: datetime | None = Field(None, description="When the outcome was confirmed (UTC); defaults to receipt time.")
    source: Token | None = Field(None, description="Who confirmed it, e.g. 'chargeback-feed'.")
    note: Annotated[str, StringConstraints(max_length=1000), AfterValidator(_no_pan)] | None = None

    @field_validator("reported_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a UTC offset")
        return value.astimezone(timezone.utc) if value else value


class FeedbackResponse(BaseModel):
    """Acknowledgement of stored feedback."""

    transaction_id: str
    outcome: str
    accepted: bool = True


class InferTensor(BaseModel):
    """Open Inference Protocol tensor."""

    model_config = ConfigDict(extra="forbid")
    name: str
    shape: list[int]
    datatype: Literal["FP32", "FP64", "INT32", "INT64"]
    parameters: dict[str, Any] | None = None
    data: list[Any]


class InferRequest(BaseModel):
    """Open Inference Protocol request (raw feature vectors)."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[InferTensor] = Field(min_length=1, max_length=1)
    outputs: list[dict[str, Any]] | None = None
