"""A seeded, deterministic simulator of a card transaction stream with labelled fraud.

``python -m app.training.simulate --rows 1000000 --out data/transactions.parquet``

Legitimate behaviour: customers with one or two cards, a phone and a laptop, a home
country and a handful of regular merchants; merchants with a category (MCC), a
country and an amount profile; daily and weekly seasonality; card-present and
online channels; some travel.

Fraud scenarios, each with its own signature (column ``fraud_scenario``):

* ``card_testing``: a burst of tiny online amounts on one card from a fraudster's
  device and IP within minutes, sometimes followed by a larger purchase;
* ``account_takeover``: a customer's account used from a new device and a foreign
  IP country, then a few large online purchases within an hour or two;
* ``compromised_merchant``: cards seen at a breached merchant are later used
  (days after) for card-present purchases abroad at varied merchants;
* ``stolen_card_online``: a stolen card used online from a new device at several
  high-risk merchants within a day.

Labels arrive late: ``label_available_at`` is when a chargeback or confirmation
would reach the bank (days to weeks), so training can respect label delay.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

SCENARIOS: tuple[str, ...] = ("card_testing", "account_takeover", "compromised_merchant",
                              "stolen_card_online")
# Share of fraudulent transactions per scenario.
SCENARIO_SHARES: dict[str, float] = {"card_testing": 0.35, "account_takeover": 0.2,
                                     "compromised_merchant": 0.25, "stolen_card_online": 0.2}
COUNTRIES = np.array(["US", "GB", "DE", "FR", "NL", "ES", "IT", "CA", "BR", "IN", "NG", "RO",
                      "RU", "CN", "MX"])
HOME_WEIGHTS = np.array([40, 12, 10, 8, 5, 5, 5, 6, 3, 3, 0.5, 1, 0.5, 0.5, 0.5])
RISKY_COUNTRIES = np.array(["NG", "RO", "RU", "CN", "BR", "MX", "IN"])
CURRENCY = {"US": "USD", "GB": "GBP", "CA": "CAD", "BR": "BRL", "IN": "INR", "NG": "NGN",
            "RO": "RON", "RU": "RUB", "CN": "CNY", "MX": "MXN"}
# (mcc, weight, median amount, online share)
MCCS = [
    (5411, 20, 45.0, 0.1), (5812, 15, 30.0, 0.05), (5814, 12, 12.0, 0.1), (5541, 10, 50.0, 0.0),
    (5311, 6, 70.0, 0.3), (5651, 6, 60.0, 0.4), (5732, 3, 250.0, 0.6), (5734, 3, 30.0, 0.9),
    (5816, 3, 15.0, 1.0), (5944, 1, 400.0, 0.3), (4511, 2, 350.0, 0.8), (7011, 2, 180.0, 0.6),
    (4121, 5, 20.0, 0.9), (5999, 6, 40.0, 0.5), (4900, 3, 90.0, 0.9), (6011, 2, 100.0, 0.0),
    (7995, 1, 60.0, 1.0), (5912, 4, 25.0, 0.1), (8099, 2, 120.0, 0.2),
]
HOUR_PROFILE = np.array([1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 4, 5, 5.5, 6, 7, 6.5, 6, 6, 6.5,
                         7, 7.5, 7, 6, 4.5, 3, 1.8])
WEEKDAY_PROFILE = np.array([0.95, 0.95, 1.0, 1.0, 1.15, 1.25, 0.9])  # Monday first
START = pd.Timestamp("2026-01-05T00:00:00Z")  # a Monday


@dataclass(frozen=True)
class SimulationArgs:
    """Parameters of one simulated stream."""

    rows: int = 100_000
    fraud_rate: float = 0.005
    days: int = 60
    seed: int = 7

    def __post_init__(self) -> None:
        if self.rows < 1_000:
            raise ValueError("simulate: rows must be at least 1000")
        if not 0.0005 <= self.fraud_rate <= 0.05:
            raise ValueError("simulate: fraud_rate must be between 0.0005 and 0.05")
        if self.days < 8:
            raise ValueError("simulate: days must be at least 8 (longer than the 7 d window)")


def _sample_times(rng: np.random.Generator, n: int, days: int) -> np.ndarray:
    """Epoch ms with daily and weekly seasonality."""
    day_w = WEEKDAY_PROFILE[(np.arange(days) + START.weekday()) % 7]
    day = rng.choice(days, size=n, p=day_w / day_w.sum())
    hour = rng.choice(24, size=n, p=HOUR_PROFILE / HOUR_PROFILE.sum())
    ms = rng.integers(0, 3_600_000, size=n)
    base = START.value // 1_000_000
    return base + day * 86_400_000 + hour * 3_600_000 + ms


class _World:
    """Customers, cards, devices and merchants."""

    def __init__(self, rng: np.random.Generator, n_rows: int):
        n_cust = max(200, n_rows // 60)
        n_merch = max(100, n_rows // 400)
        self.n_cust, self.n_merch = n_cust, n_merch
        self.home = rng.choice(len(COUNTRIES), size=n_cust, p=HOME_WEIGHTS / HOME_WEIGHTS.sum())
        self.activity = rng.lognormal(0.0, 0.8, size=n_cust)
        self.spend = rng.lognormal(0.0, 0.35, size=n_cust)
        self.online_pref = rng.beta(2, 3, size=n_cust)
        self.n_cards = 1 + (rng.random(n_cust) < 0.3)
        mcc_w = np.array([m[1] for m in MCCS], dtype=float)
        self.m_mcc_idx = rng.choice(len(MCCS), size=n_merch, p=mcc_w / mcc_w.sum())
        self.m_country = rng.choice(len(COUNTRIES), size=n_merch, p=HOME_WEIGHTS / HOME_WEIGHTS.sum())
        self.m_pop = rng.lognormal(0.0, 1.0, size=n_merch)
        self.m_scale = rng.lognormal(0.0, 0.3, size=n_merch)
        # regular merchants: drawn among merchants of the home country
        self.favs = np.empty((n_cust, 12), dtype=np.int64)
        by_country = {c: np.flatnonzero(self.m_country == c) for c in range(len(COUNTRIES))}
        all_m = np.arange(n_merch)
        for c in range(len(COUNTRIES)):
            cust = np.flatnonzero(self.home == c)
            pool = by_country[c] if len(by_country[c]) >= 3 else all_m
            w = self.m_pop[pool] / self.m_pop[pool].sum()
            self.favs[cust] = pool[rng.choice(len(pool), size=(len(cust), 12), p=w)]
        self.merch_online = np.array([MCCS[i][3] for i in self.m_mcc_idx])
        self.merch_median = np.array([MCCS[i][2] for i in self.m_mcc_idx]) * self.m_scale


def _legit(rng: np.random.Generator, world: _World, n: int, days: int) -> pd.DataFrame:
    cust = rng.choice(world.n_cust, size=n, p=world.activity / world.activity.sum())
    t = _sample_times(rng, n, days)
    fav = rng.random(n) < 0.85
    merch = np.where(fav, world.favs[cust, rng.integers(0, 12, size=n)],
                     rng.choice(world.n_merch, size=n, p=world.m_pop / world.m_pop.sum()))
    online = rng.random(n) < world.merch_online[merch] * (0.4 + world.online_pref[cust])
    card_no = np.where(world.n_cards[cust] > 1, rng.integers(0, 2, size=n), 0)
    amount = np.round(world.merch_median[merch] * world.spend[cust]
                      * rng.lognormal(0.0, 0.6, size=n), 2).clip(0.5, 20_000)
    home = world.home[cust]
    travel = rng.random(n) < 0.02
    ip_country = np.where(travel, rng.integers(0, len(COUNTRIES), size=n), home)
    dev_no = rng.integers(0, 2, size=n)
    return pd.DataFrame({
        "t": t, "cust": cust, "card_no": card_no, "merch": merch, "online": online,
        "amount": amount, "ip_country": ip_country,
        "device": np.char.add(np.char.add("d", cust.astype(str)), np.char.add("-", dev_no.astype(str))),
        "ip": np.char.add("ip-", cust.astype(str)),
        "is_fraud": 0, "fraud_scenario": "",
    })


def _fraud(rng: np.random.Generator, world: _World, n_target: int, days: int,
           legit: pd.DataFrame, progress: tqdm) -> pd.DataFrame:
    base = START.value // 1_000_000
    span = days * 86_400_000
    rows: list[dict] = []
    risky_idx = np.flatnonzero(np.isin(COUNTRIES, RISKY_COUNTRIES))
    high_risk_m = np.flatnonzero(np.isin(world.m_mcc_idx, [i for i, m in enumerate(MCCS)
                                                           if m[0] in (5732, 5734, 5816, 5944, 7995, 4511)]))
    small_m = np.flatnonzero(np.isin(world.m_mcc_idx, [i for i, m in enumerate(MCCS)
                                                       if m[0] in (5816, 5734, 5999, 4121)]))
    fraud_devices = [f"fd-{i}" for i in range(max(20, n_target // 40))]
    fraud_ips = [f"fip-{i}" for i in range(max(20, n_target // 60))]
    counts = {s: 0 for s in SCENARIOS}
    quotas = {s: int(round(n_target * SCENARIO_SHARES[s])) for s in SCENARIOS}
    # breached merchants and the cards seen there
    breached = rng.choice(world.n_merch, size=max(2, world.n_merch // 150), replace=False)
    seen = legit[legit["merch"].isin(breached)]

    def add(t, cust, card_no, merch, online, amount, ipc, device, ip, scen):
        rows.append({"t": int(t), "cust": int(cust), "card_no": int(card_no), "merch": int(merch),
                     "online": bool(online), "amount": round(float(amount), 2),
                     "ip_country": int(ipc), "device": device, "ip": ip,
                     "is_fraud": 1, "fraud_scenario": scen})
        counts[scen] += 1
        progress.update(1)

    def victim():
        c = int(rng.integers(0, world.n_cust))
        return c, int(rng.integers(0, world.n_cards[c]))

    while any(counts[s] < quotas[s] for s in SCENARIOS):
        open_s = [s for s in SCENARIOS if counts[s] < quotas[s]]
        scen = open_s[int(rng.integers(0, len(open_s)))]
        t0 = base + int(rng.integers(86_400_000, span - 86_400_000))
        if scen == "card_testing":
            c, k = victim()
            dev, ip = fraud_devices[rng.integers(len(fraud_devices))], fraud_ips[rng.integers(len(fraud_ips))]
            ipc = int(rng.choice(risky_idx))
            n = int(rng.integers(4, 16))
            t = t0
            for _ in range(min(n, quotas[scen] - counts[scen])):
                t += int(rng.integers(5_000, 120_000))
                add(t, c, k, rng.choice(small_m), True, rng.uniform(0.5, 4.0), ipc, dev, ip, scen)
            if rng.random() < 0.4 and counts[scen] < quotas[scen]:
                add(t + int(rng.integers(60_000, 1_800_000)), c, k, rng.choice(high_risk_m), True,
                    rng.lognormal(5.5, 0.5), ipc, dev, ip, scen)
        elif scen == "account_takeover":
            c, k = victim()
            dev = f"ato-{len(rows)}"
            ip = fraud_ips[rng.integers(len(fraud_ips))]
            ipc = int(rng.choice(risky_idx))
            t = t0
            for _ in range(min(int(rng.integers(1, 5)), quotas[scen] - counts[scen])):
                t += int(rng.integers(60_000, 2_400_000))
                add(t, c, k, rng.choice(high_risk_m), True,
                    rng.lognormal(6.0, 0.6) * world.spend[c], ipc, dev, ip, scen)
        elif scen == "compromised_merchant":
            if len(seen) == 0:
                quotas[scen] = counts[scen]
                continue
            r = seen.iloc[int(rng.integers(0, len(seen)))]
            c, k = int(r["cust"]), int(r["card_no"])
            t = int(r["t"]) + int(rng.integers(2 * 86_400_000, 12 * 86_400_000))
            abroad = int(rng.choice(risky_idx))
            far = np.flatnonzero(world.m_country == abroad)
            pool = far if len(far) else np.arange(world.n_merch)
            for _ in range(min(int(rng.integers(1, 4)), quotas[scen] - counts[scen])):
                t += int(rng.integers(600_000, 14_400_000))
                if t >= base + span:  # the stream ends before the card is used
                    break
                add(t, c, k, rng.choice(pool), False, rng.lognormal(5.0, 0.7), abroad, None, None, scen)
        else:  # stolen_card_online
            c, k = victim()
            dev = fraud_devices[rng.integers(len(fraud_devices))]
            ip = fraud_ips[rng.integers(len(fraud_ips))]
            ipc = int(rng.choice(risky_idx)) if rng.random() < 0.6 else int(world.home[c])
            t = t0
            for _ in range(min(int(rng.integers(2, 7)), quotas[scen] - counts[scen])):
                t += int(rng.integers(300_000, 10_800_000))
                add(t, c, k, rng.choice(high_risk_m), True, rng.lognormal(5.2, 0.6), ipc, dev, ip, scen)
    return pd.DataFrame(rows)


def simulate(args: SimulationArgs, progress: bool = False) -> pd.DataFrame:
    """The simulated stream, sorted by time, in the transaction contract's columns.

    Extra columns: ``is_fraud`` (0/1), ``fraud_scenario`` ("" for legitimate) and
    ``label_available_at``.
    """
    rng = np.random.default_rng(args.seed)
    n_fraud = max(1, int(round(args.rows * args.fraud_rate)))
    n_legit = args.rows - n_fraud
    with tqdm(total=args.rows, desc="simulate", unit="txn", disable=not progress,
              file=sys.stderr) as bar:
        world = _World(rng, args.rows)
        chunks = []
        step = 250_000
        for start in range(0, n_legit, step):
            n = min(step, n_legit - start)
            chunks.append(_legit(rng, world, n, args.days))
            bar.update(n)
        legit = pd.concat(chunks, ignore_index=True)
        fraud = _fraud(rng, world, n_fraud, args.days, legit, bar)
    df = pd.concat([legit, fraud], ignore_index=True)
    if len(df) > args.rows:  # a burst may overshoot its quota by its tail
        df = df.iloc[: args.rows]
    df = df.sort_values(["t"], kind="stable").reset_index(drop=True)
    n = len(df)
    cust = df["cust"].to_numpy()
    merch = df["merch"].to_numpy()
    online = df["online"].to_numpy(dtype=bool)
    home = world.home[cust]
    card_country = COUNTRIES[home]
    ipc = COUNTRIES[df["ip_country"].to_numpy()]
    mcc = np.array([f"{MCCS[i][0]:04d}" for i in range(len(MCCS))])[world.m_mcc_idx[merch]]
    cust_s = cust.astype(str)
    card = np.char.add(np.char.add("card-", cust_s), np.char.add("-", df["card_no"].to_numpy().astype(str)))
    device = df["device"].to_numpy(dtype=object)
    ip = df["ip"].to_numpy(dtype=object)
    out = pd.DataFrame({
        "transaction_id": np.char.add("tx-", np.arange(n).astype(str)),
        "timestamp": pd.to_datetime(df["t"].to_numpy(), unit="ms", utc=True),
        "amount": df["amount"].to_numpy(),
        "currency": [CURRENCY.get(c, "EUR") for c in COUNTRIES[world.m_country[merch]]],
        "card_token": card,
        "customer_id": np.char.add("cust-", cust_s),
        "merchant_id": np.char.add("m-", merch.astype(str)),
        "mcc": mcc,
        "merchant_country": COUNTRIES[world.m_country[merch]],
        "card_country": card_country,
        "channel": np.where(online, "online", "card_present"),
        "device_id": np.where(online, device, None),
        "ip_address": np.where(online, ip, None),
        "ip_country": np.where(online, ipc, None),
        "is_fraud": df["is_fraud"].to_numpy(dtype=np.int8),
        "fraud_scenario": df["fraud_scenario"].to_numpy(dtype=object),
    })
    delay_days = rng.gamma(2.0, 6.0, size=n)
    out["label_available_at"] = out["timestamp"] + pd.to_timedelta(
        np.where(out["is_fraud"] == 1, delay_days, 45.0), unit="D")
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: simulate a stream and write it as Parquet or CSV."""
    p = argparse.ArgumentParser(prog="python -m app.training.simulate", description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--fraud-rate", type=float, default=0.005)
    p.add_argument("--days", type=int, default=60)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, default=Path("data/transactions.parquet"),
                   help="output file; .parquet or .csv")
    a = p.parse_args(argv)
    if a.out.suffix not in (".parquet", ".csv"):
        p.error("--out must end in .parquet or .csv")
    try:
        args = SimulationArgs(rows=a.rows, fraud_rate=a.fraud_rate, days=a.days, seed=a.seed)
    except ValueError as exc:
        p.error(str(exc))
    started = time.perf_counter()
    df = simulate(args, progress=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    if a.out.suffix == ".parquet":
        df.to_parquet(a.out, index=False)
    else:
        df.to_csv(a.out, index=False)
    frauds = df["fraud_scenario"][df["is_fraud"] == 1].value_counts().to_dict()
    print(f"wrote {len(df):,} transactions ({df['is_fraud'].mean():.3%} fraud: {frauds}) to {a.out}"
          f" in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
