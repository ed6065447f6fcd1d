"""The one definition of the model's features, for training and for serving.

Two paths compute the same vector for a transaction:

* ``offline_features(df)`` over a history (training, backfills), vectorised per
  entity with sorted arrays and binary search, so millions of rows take seconds;
* ``vectorize(txn, velocity)`` online, where ``velocity`` comes from a velocity
  store (``app.velocity``) that applies the same window rules incrementally.

Point-in-time rule: a transaction at time ``t`` sees only transactions with a
timestamp strictly earlier than ``t`` (millisecond resolution). Transactions with
equal timestamps never see each other, whatever order they arrive in; this makes
the offline result independent of row order and lets the online store reproduce
it exactly. A window ``W`` covers ``[t - W, t)``.

Missing ``device_id`` / ``ip_address`` / ``ip_country`` are not entities: their
features are 0 and nothing is recorded for them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

# ---------------------------------------------------------------------------
# Transaction contract (docs/ARCHITECTURE.md, "Transaction fields").
# ---------------------------------------------------------------------------
TRANSACTION_FIELDS: tuple[str, ...] = (
    "transaction_id",
    "timestamp",
    "amount",
    "currency",
    "card_token",
    "customer_id",
    "merchant_id",
    "mcc",
    "merchant_country",
    "card_country",
    "channel",
    "device_id",
    "ip_address",
    "ip_country",
)
OPTIONAL_FIELDS: frozenset[str] = frozenset({"device_id", "ip_address", "ip_country"})
CHANNELS: tuple[str, ...] = ("card_present", "online")

# ---------------------------------------------------------------------------
# Windows and entities.
# ---------------------------------------------------------------------------
WINDOWS_MS: dict[str, int] = {"1h": 3_600_000, "24h": 86_400_000, "7d": 604_800_000}
LONGEST_WINDOW_MS: int = max(WINDOWS_MS.values())
# entity name -> transaction field holding its key
ENTITIES: dict[str, str] = {
    "card": "card_token",
    "customer": "customer_id",
    "device": "device_id",
    "ip": "ip_address",
    "merchant": "merchant_id",
}
# (feature stem, entity, counterparty field): distinct counterparties per entity
DISTINCTS: tuple[tuple[str, str, str], ...] = (
    ("card_distinct_merchants", "card", "merchant_id"),
    ("card_distinct_devices", "card", "device_id"),
    ("device_distinct_cards", "device", "card_token"),
    ("ip_distinct_cards", "ip", "card_token"),
)
# (feature name, first field, second field): prior transactions of this pair in 7 d.
# A zero on a present device / ip country is the "new device / new country for
# this customer" signal of account takeover.
PAIRS: tuple[tuple[str, str, str], ...] = (
    ("customer_device_count_7d", "customer_id", "device_id"),
    ("customer_ip_country_count_7d", "customer_id", "ip_country"),
)
# Seconds since the card's previous transaction, capped at the longest window
# (the online store keeps nothing older), and the cap when there is none.
SECONDS_SINCE_CAP: float = LONGEST_WINDOW_MS / 1000.0

RAW_FEATURES: tuple[str, ...] = (
    "amount",
    "log_amount",
    "hour",
    "weekday",
    "is_online",
    "mcc_group",
    "mcc_high_risk",
    "card_merchant_country_mismatch",
    "ip_card_country_mismatch",
    "ip_merchant_country_mismatch",
    "has_device",
    "has_ip",
)


def _velocity_names() -> tuple[str, ...]:
    names: list[str] = []
    for entity in ENTITIES:
        for w in WINDOWS_MS:
            names.append(f"{entity}_count_{w}")
            names.append(f"{entity}_amount_{w}")
    for stem, _, _ in DISTINCTS:
        for w in WINDOWS_MS:
            names.append(f"{stem}_{w}")
    names.extend(name for name, _, _ in PAIRS)
    names.append("card_seconds_since_prev")
    return tuple(names)


# What a velocity store returns, in this order.
VELOCITY_FEATURES: tuple[str, ...] = _velocity_names()
# Derived from the transaction and its velocity features.
DERIVED_FEATURES: tuple[str, ...] = ("card_amount_ratio_7d",)
FEATURE_NAMES: tuple[str, ...] = RAW_FEATURES + VELOCITY_FEATURES + DERIVED_FEATURES
N_FEATURES: int = len(FEATURE_NAMES)

# ---------------------------------------------------------------------------
# MCC groups: a coarse, stable grouping (ISO 18245 ranges plus the few codes fraud
# teams single out). Group codes are part of the model contract: append only.
# ---------------------------------------------------------------------------
MCC_GROUPS: dict[str, int] = {
    "unknown": 0,
    "travel": 1,
    "utilities": 2,
    "retail": 3,
    "grocery": 4,
    "restaurants": 5,
    "digital_goods": 6,
    "electronics": 7,
    "jewelry_luxury": 8,
    "cash_quasi_cash": 9,
    "gambling": 10,
    "services": 11,
    "government": 12,
}
# Codes fraudsters monetise fastest (resellable goods, cash, gambling, gift cards).
HIGH_RISK_MCCS: frozenset[int] = frozenset(
    {4829, 5732, 5734, 5816, 5944, 6010, 6011, 6051, 6540, 7995, 5094}
)
_MCC_SPECIAL: dict[int, str] = {
    5411: "grocery", 5422: "grocery", 5441: "grocery", 5451: "grocery", 5462: "grocery",
    5499: "grocery",
    5812: "restaurants", 5813: "restaurants", 5814: "restaurants",
    5815: "digital_goods", 5816: "digital_goods", 5817: "digital_goods", 5818: "digital_goods",
    5734: "digital_goods",
    5732: "electronics", 5045: "electronics", 5722: "electronics",
    5944: "jewelry_luxury", 5094: "jewelry_luxury", 5681: "jewelry_luxury",
    6010: "cash_quasi_cash", 6011: "cash_quasi_cash", 6051: "cash_quasi_cash",
    6540: "cash_quasi_cash", 4829: "cash_quasi_cash",
    7995: "gambling", 7800: "gambling", 7801: "gambling", 7802: "gambling",
}


def mcc_group(mcc: int) -> int:
    """Group code of a merchant category code (0 for unknown or out of range)."""
    if mcc in _MCC_SPECIAL:
        return MCC_GROUPS[_MCC_SPECIAL[mcc]]
    if 3000 <= mcc <= 4799:
        return MCC_GROUPS["travel"]
    if 4800 <= mcc <= 4999:
        return MCC_GROUPS["utilities"]
    if 5000 <= mcc <= 5999:
        return MCC_GROUPS["retail"]
    if 7000 <= mcc <= 8999:
        return MCC_GROUPS["services"]
    if 9000 <= mcc <= 9999:
        return MCC_GROUPS["government"]
    return MCC_GROUPS["unknown"]


# The vectorised path uses a lookup table built from the same function.
_MCC_GROUP_LUT = np.array([mcc_group(i) for i in range(10_000)], dtype=np.float32)
_MCC_RISK_LUT = np.array([1.0 if i in HIGH_RISK_MCCS else 0.0 for i in range(10_000)],
                         dtype=np.float32)


def _mcc_int(value: Any) -> int:
    try:
        code = int(str(value))
    except (TypeError, ValueError):
        return -1
    return code if 0 <= code <= 9999 else -1


# ---------------------------------------------------------------------------
# Time.
# ---------------------------------------------------------------------------
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def timestamp_ms(value: Any) -> int:
    """Epoch milliseconds (UTC) of an ISO 8601 string, a datetime or a number of ms.

    Naive datetimes are taken as UTC, as the transaction contract says.
    """
    if isinstance(value, bool):
        raise TypeError("timestamp: expected an ISO 8601 datetime, got a boolean")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        value = datetime.fromisoformat(text)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    raise TypeError(f"timestamp: expected an ISO 8601 datetime, got {type(value).__name__}")


def _hour_weekday(ms: int) -> tuple[int, int]:
    # 1970-01-01 was a Thursday (weekday 3, Monday = 0).
    return (ms // 3_600_000) % 24, (ms // 86_400_000 + 3) % 7


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return str(value) != ""


# ---------------------------------------------------------------------------
# Online path.
# ---------------------------------------------------------------------------
def velocity_defaults() -> dict[str, float]:
    """Velocity values of a transaction with no history (also the degraded fallback)."""
    out = {name: 0.0 for name in VELOCITY_FEATURES}
    out["card_seconds_since_prev"] = SECONDS_SINCE_CAP
    return out


def raw_features(txn: Mapping[str, Any]) -> list[float]:
    """The raw (history-free) features of one transaction, in ``RAW_FEATURES`` order."""
    amount = float(txn["amount"])
    hour, weekday = _hour_weekday(timestamp_ms(txn["timestamp"]))
    mcc = _mcc_int(txn.get("mcc"))
    card_c = txn.get("card_country")
    merch_c = txn.get("merchant_country")
    ip_c = txn.get("ip_country")
    has_ip_c = _present(ip_c)
    return [
        amount,
        math.log1p(max(amount, 0.0)),
        float(hour),
        float(weekday),
        1.0 if txn.get("channel") == "online" else 0.0,
        float(_MCC_GROUP_LUT[mcc]) if mcc >= 0 else 0.0,
        float(_MCC_RISK_LUT[mcc]) if mcc >= 0 else 0.0,
        1.0 if card_c != merch_c else 0.0,
        1.0 if has_ip_c and ip_c != card_c else 0.0,
        1.0 if has_ip_c and ip_c != merch_c else 0.0,
        1.0 if _present(txn.get("device_id")) else 0.0,
        1.0 if _present(txn.get("ip_address")) else 0.0,
    ]


def _ratio(amount: float, total: float, count: float) -> float:
    if count <= 0 or total <= 0:
        return 1.0
    return amount / (total / count)


def velocity_values(velocity: Mapping[str, float]) -> list[float]:
    """The velocity features in ``VELOCITY_FEATURES`` order from what a velocity store's
    ``observe`` returned; missing names take ``velocity_defaults()`` (``{}``: degraded)."""
    defaults = _DEFAULTS
    return [float(velocity.get(name, defaults[name])) for name in VELOCITY_FEATURES]


def vectorize(txn: Mapping[str, Any], velocity: Mapping[str, float]) -> np.ndarray:
    """The model input vector (float32, ``(F,)``) of one transaction.

    ``velocity`` is what a velocity store's ``observe`` returned; missing names
    take ``velocity_defaults()`` (the service passes ``{}`` when degraded).
    """
    raw = raw_features(txn)
    vel = velocity_values(velocity)
    ratio = _ratio(raw[0], vel[_IDX_CARD_AMOUNT_7D], vel[_IDX_CARD_COUNT_7D])
    return np.asarray(raw + vel + [ratio], dtype=np.float32)


def vectorize_many(txns: Sequence[Mapping[str, Any]], velocity: np.ndarray,
                   raw: Sequence[Sequence[float]] | None = None) -> np.ndarray:
    """The model input matrix (float32, ``(N, F)``) of many transactions: row i is
    ``vectorize(txns[i], ...)`` exactly (tests/model/test_features.py), built with one
    copy per block of columns instead of one array per transaction.

    ``velocity`` holds each transaction's velocity features in ``VELOCITY_FEATURES``
    order (``(N, len(VELOCITY_FEATURES))``: a velocity store's ``observe_matrix``, or
    ``velocity_values`` of what ``observe`` returned); ``raw`` the transactions'
    ``raw_features`` when the caller computed them already (the service does, while
    the velocity store works).
    """
    n = len(txns)
    vel = np.asarray(velocity, dtype=np.float64)
    if vel.shape != (n, len(VELOCITY_FEATURES)):
        raise ValueError(f"vectorize_many: velocity must have shape ({n}, {len(VELOCITY_FEATURES)}), got {vel.shape}")
    if raw is None:
        raw = [raw_features(txn) for txn in txns]
    elif len(raw) != n:
        raise ValueError(f"vectorize_many: {len(raw)} raw feature rows for {n} transactions")
    out = np.empty((n, N_FEATURES), dtype=np.float32)
    if not n:
        return out
    nr, nv = len(RAW_FEATURES), len(VELOCITY_FEATURES)
    # float64 values rounded to float32 on assignment, as np.asarray(..., float32) does
    out[:, :nr] = raw
    out[:, nr:nr + nv] = vel
    # the derived feature from the same float64 values as vectorize, by the same function
    out[:, nr + nv] = [_ratio(r[0], s, c) for r, s, c in
                       zip(raw, vel[:, _IDX_CARD_AMOUNT_7D].tolist(), vel[:, _IDX_CARD_COUNT_7D].tolist())]
    return out


_DEFAULTS = velocity_defaults()
_IDX_CARD_COUNT_7D = VELOCITY_FEATURES.index("card_count_7d")
_IDX_CARD_AMOUNT_7D = VELOCITY_FEATURES.index("card_amount_7d")


# ---------------------------------------------------------------------------
# Offline path.
# ---------------------------------------------------------------------------
def _timestamps_ms(col: pd.Series) -> np.ndarray:
    if pd.api.types.is_integer_dtype(col):
        return col.to_numpy(dtype=np.int64)
    if isinstance(col.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(col):
        ts = pd.to_datetime(col, utc=True)
    else:
        try:
            ts = pd.to_datetime(col, utc=True, format="ISO8601")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"timestamp: not ISO 8601 datetimes: {exc}") from None
    # Floor to ms as timestamp_ms does (pandas would round half-even otherwise).
    return ts.dt.floor("ms").to_numpy(dtype="datetime64[ms]").astype(np.int64)


def _codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of a key column and a mask of present keys."""
    s = values.astype(object)
    present = s.notna().to_numpy() & (s.astype(str) != "").to_numpy()
    codes, _ = pd.factorize(s.where(present, None), use_na_sentinel=True)
    return codes.astype(np.int64), present


def _pair_codes(a: pd.Series, b: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    ca, pa = _codes(a)
    cb, pb = _codes(b)
    present = pa & pb
    key = ca * (int(cb.max(initial=0)) + 1) + cb
    codes, _ = pd.factorize(np.where(present, key, -1))
    return codes.astype(np.int64), present


class _Timeline:
    """Rows of one entity kind sorted by (entity, time), for window queries."""

    def __init__(self, codes: np.ndarray, present: np.ndarray, t: np.ndarray,
                 amount: np.ndarray | None = None):
        self.rows = np.flatnonzero(present)
        self.t = t
        span = int(t.max() - t.min()) + 2 * LONGEST_WINDOW_MS + 1 if len(t) else 1
        self.base = int(t.min()) - LONGEST_WINDOW_MS if len(t) else 0
        self.span = span
        self.code = codes
        key = codes[self.rows] * span + (t[self.rows] - self.base)
        order = np.argsort(key, kind="stable")
        self.rows = self.rows[order]
        self.key = key[order]
        self.present = present
        if amount is not None:
            self.cum = np.concatenate([[0.0], np.cumsum(amount[self.rows], dtype=np.float64)])

    def before(self, shift_ms: int) -> np.ndarray:
        """Per row, the index into the sorted timeline of the entity's first event at
        or after ``t - shift`` (0 where the entity is absent).

        The needles are the timeline's own keys shifted, hence already sorted, which
        keeps the binary searches cache-friendly on millions of rows.
        """
        out = np.zeros(len(self.t), dtype=np.int64)
        out[self.rows] = np.searchsorted(self.key, self.key - shift_ms, side="left")
        return out


def _window_counts_sums(tl: _Timeline, w_ms: int) -> tuple[np.ndarray, np.ndarray]:
    hi = tl.before(0)
    lo = tl.before(w_ms)
    count = (hi - lo).astype(np.float64)
    total = tl.cum[hi] - tl.cum[lo]
    count[~tl.present] = 0.0
    total[~tl.present] = 0.0
    return count, total


def _distinct_counts(entity: tuple[np.ndarray, np.ndarray], other: tuple[np.ndarray, np.ndarray],
                     t: np.ndarray, windows: list[int]) -> list[np.ndarray]:
    """Distinct counterparties of each row's entity over ``[t - W, t)``.

    Every (entity, counterparty) occurrence at ``s`` counts for queries ``t`` in
    ``(s, s + W]``. Merging those intervals per pair gives disjoint segments
    ``(a, b]``; the distinct count at ``t`` is the number of the entity's segments
    with ``a < t <= b`` = #(a < t) - #(b < t).
    """
    e_codes, e_present = entity
    o_codes, o_present = other
    valid = np.flatnonzero(e_present & o_present)
    n = len(t)
    out = []
    pair = e_codes[valid] * (int(o_codes.max(initial=0)) + 1) + o_codes[valid]
    order = np.lexsort((t[valid], pair))
    p_sorted = pair[order]
    s_sorted = t[valid][order]
    e_sorted = e_codes[valid][order]
    e_rows = np.flatnonzero(e_present)
    q_sorted = q_order = None
    t0 = int(t.min()) - LONGEST_WINDOW_MS if n else 0
    span = (int(t.max()) - t0 + 2 * LONGEST_WINDOW_MS + 1) if n else 1
    for w in windows:
        if len(valid) == 0:
            out.append(np.zeros(n))
            continue
        new_pair = np.empty(len(p_sorted), dtype=bool)
        new_pair[0] = True
        new_pair[1:] = p_sorted[1:] != p_sorted[:-1]
        gap = np.empty(len(p_sorted), dtype=bool)
        gap[0] = True
        gap[1:] = (s_sorted[1:] - s_sorted[:-1]) > w
        seg_start = new_pair | gap
        starts = s_sorted[seg_start]
        seg_entity = e_sorted[seg_start]
        last = np.empty(len(starts), dtype=np.int64)
        # the last occurrence of each segment: positions before the next start
        ends_pos = np.concatenate([np.flatnonzero(seg_start)[1:] - 1, [len(s_sorted) - 1]])
        last[:] = s_sorted[ends_pos]
        ends = last + w
        a_key = np.sort(seg_entity * span + (starts - t0))
        b_key = np.sort(seg_entity * span + (ends - t0))
        if q_sorted is None:
            q = e_codes[e_rows] * span + (t[e_rows] - t0)
            q_order = np.argsort(q, kind="stable")
            q_sorted = q[q_order]
        cnt = np.zeros(n)
        cnt[e_rows[q_order]] = (np.searchsorted(a_key, q_sorted, side="left")
                                - np.searchsorted(b_key, q_sorted, side="left"))
        out.append(cnt)
    return out


def offline_velocity(df: pd.DataFrame) -> np.ndarray:
    """Velocity features (float64, ``(N, len(VELOCITY_FEATURES))``) over a history."""
    n = len(df)
    t = _timestamps_ms(df["timestamp"])
    amount = df["amount"].to_numpy(dtype=np.float64)
    cols: dict[str, np.ndarray] = {}
    codes = {field: _codes(df[field]) for field in
             ("card_token", "customer_id", "device_id", "ip_address", "merchant_id")}
    for entity, field in ENTITIES.items():
        tl = _Timeline(*codes[field], t, amount)
        for w_name, w in WINDOWS_MS.items():
            c, s = _window_counts_sums(tl, w)
            cols[f"{entity}_count_{w_name}"] = c
            cols[f"{entity}_amount_{w_name}"] = s
        if entity == "card":
            prev = tl.before(0) - 1
            ok = prev >= 0
            prev_rows = tl.rows[np.clip(prev, 0, None)] if len(tl.rows) else np.zeros(n, np.int64)
            same = ok & (codes[field][0][prev_rows] == codes[field][0]) if len(tl.rows) else ok
            gap = (t - t[prev_rows]) / 1000.0 if len(tl.rows) else np.zeros(n)
            sec = np.where(same & tl.present, np.minimum(gap, SECONDS_SINCE_CAP),
                           SECONDS_SINCE_CAP)
            cols["card_seconds_since_prev"] = sec
    windows = list(WINDOWS_MS.values())
    for stem, entity, other in DISTINCTS:
        counts = _distinct_counts(codes[ENTITIES[entity]], codes[other] if other in codes
                                  else _codes(df[other]), t, windows)
        for w_name, c in zip(WINDOWS_MS, counts):
            cols[f"{stem}_{w_name}"] = c
    for name, fa, fb in PAIRS:
        pc, pp = _pair_codes(df[fa], df[fb])
        tl = _Timeline(pc, pp, t, amount)
        c, _ = _window_counts_sums(tl, LONGEST_WINDOW_MS)
        cols[name] = c
    return np.column_stack([cols[name] for name in VELOCITY_FEATURES]) if n else np.zeros(
        (0, len(VELOCITY_FEATURES)))


def offline_raw(df: pd.DataFrame) -> np.ndarray:
    """Raw features (float64, ``(N, len(RAW_FEATURES))``), the vectorised ``raw_features``."""
    t = _timestamps_ms(df["timestamp"])
    amount = df["amount"].to_numpy(dtype=np.float64)
    mcc = pd.to_numeric(df["mcc"].astype(str), errors="coerce").to_numpy(dtype=np.float64)
    mcc_ok = np.isfinite(mcc) & (mcc >= 0) & (mcc <= 9999)
    mcc_i = np.where(mcc_ok, mcc, 0).astype(np.int64)

    def present(field: str) -> np.ndarray:
        if field not in df:
            return np.zeros(len(df), dtype=bool)
        s = df[field].astype(object)
        return s.notna().to_numpy() & (s.astype(str) != "").to_numpy()

    card_c = df["card_country"].astype(object).to_numpy()
    merch_c = df["merchant_country"].astype(object).to_numpy()
    ip_c = df["ip_country"].astype(object).to_numpy() if "ip_country" in df else np.full(
        len(df), None)
    has_ip_c = present("ip_country")
    return np.column_stack([
        amount,
        np.log1p(np.maximum(amount, 0.0)),
        ((t // 3_600_000) % 24).astype(np.float64),
        ((t // 86_400_000 + 3) % 7).astype(np.float64),
        (df["channel"].astype(object).to_numpy() == "online").astype(np.float64),
        np.where(mcc_ok, _MCC_GROUP_LUT[mcc_i], 0.0),
        np.where(mcc_ok, _MCC_RISK_LUT[mcc_i], 0.0),
        (card_c != merch_c).astype(np.float64),
        (has_ip_c & (ip_c != card_c)).astype(np.float64),
        (has_ip_c & (ip_c != merch_c)).astype(np.float64),
        present("device_id").astype(np.float64),
        present("ip_address").astype(np.float64),
    ])


def offline_features(df: pd.DataFrame) -> np.ndarray:
    """Model inputs (float32, ``(N, F)``) for every row of a transaction history.

    Row order is preserved; the result does not depend on it (ties at equal
    timestamps are resolved by the strictly-earlier rule, not by position).
    """
    missing = [f for f in TRANSACTION_FIELDS if f not in df.columns and f not in OPTIONAL_FIELDS]
    if missing:
        raise ValueError(f"offline_features: missing transaction columns: {', '.join(missing)}")
    df = df.copy()
    for f in OPTIONAL_FIELDS:
        if f not in df:
            df[f] = None
    raw = offline_raw(df)
    vel = offline_velocity(df)
    ci = VELOCITY_FEATURES.index("card_count_7d")
    si = VELOCITY_FEATURES.index("card_amount_7d")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((vel[:, ci] > 0) & (vel[:, si] > 0),
                         raw[:, 0] / (vel[:, si] / np.maximum(vel[:, ci], 1.0)), 1.0)
    return np.column_stack([raw, vel, ratio]).astype(np.float32)
