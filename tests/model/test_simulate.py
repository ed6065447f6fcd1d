"""Simulator: determinism, scenario signatures, fraud rate, output formats."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from app.features import TRANSACTION_FIELDS
from app.training.simulate import SCENARIOS, SimulationArgs, main, simulate


@pytest.fixture(scope="module")
def sim() -> pd.DataFrame:
    return simulate(SimulationArgs(rows=30_000, fraud_rate=0.01, days=20, seed=11))


def test_deterministic_per_seed(sim):
    again = simulate(SimulationArgs(rows=30_000, fraud_rate=0.01, days=20, seed=11))
    pd.testing.assert_frame_equal(sim, again)
    other = simulate(SimulationArgs(rows=30_000, fraud_rate=0.01, days=20, seed=12))
    assert not other["amount"].equals(sim["amount"])


def test_shape_rate_and_contract(sim):
    assert len(sim) == 30_000
    assert list(sim.columns[: len(TRANSACTION_FIELDS)]) == list(TRANSACTION_FIELDS)
    assert sim["is_fraud"].sum() == 300
    assert sim["transaction_id"].is_unique
    assert sim["timestamp"].is_monotonic_increasing
    assert set(sim["channel"]) == {"online", "card_present"}
    assert sim.loc[sim["channel"] == "card_present", "device_id"].isna().all()
    assert sim["mcc"].str.fullmatch(r"\d{4}").all()
    assert (sim["amount"] > 0).all()
    # label delay: fraud labels arrive after the transaction, days later
    delay = (sim["label_available_at"] - sim["timestamp"])[sim["is_fraud"] == 1]
    assert delay.min() > pd.Timedelta(0) and delay.median() > pd.Timedelta(days=3)


def test_every_scenario_present_with_its_signature(sim):
    fraud = sim[sim["is_fraud"] == 1]
    counts = fraud["fraud_scenario"].value_counts()
    assert set(counts.index) == set(SCENARIOS)
    legit = sim[sim["is_fraud"] == 0]
    assert (legit["fraud_scenario"] == "").all()
    ct = fraud[fraud["fraud_scenario"] == "card_testing"]
    assert (ct["amount"] < 5).mean() > 0.8 and legit["amount"].median() > 10
    assert ct.groupby("card_token").size().median() >= 3  # bursts
    ato = fraud[fraud["fraud_scenario"] == "account_takeover"]
    assert (ato["channel"] == "online").all()
    assert (ato["ip_country"] != ato["card_country"]).mean() > 0.8
    assert ato["amount"].median() > 3 * legit["amount"].median()
    cm = fraud[fraud["fraud_scenario"] == "compromised_merchant"]
    assert (cm["channel"] == "card_present").all()
    assert (cm["merchant_country"] != cm["card_country"]).mean() > 0.8
    sc = fraud[fraud["fraud_scenario"] == "stolen_card_online"]
    assert (sc["channel"] == "online").all()
    assert not sc["device_id"].isin(legit["device_id"].dropna()).any()  # never the owner's device


def test_fraud_rate_option():
    low = simulate(SimulationArgs(rows=20_000, fraud_rate=0.001, days=10, seed=1))
    assert low["is_fraud"].sum() == 20


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="fraud_rate"):
        SimulationArgs(rows=10_000, fraud_rate=0.5)
    with pytest.raises(ValueError, match="days"):
        SimulationArgs(rows=10_000, days=3)


def test_cli_writes_csv_and_parquet(tmp_path, capsys):
    assert main(["--rows", "5000", "--days", "10", "--out", str(tmp_path / "a.csv")]) == 0
    assert main(["--rows", "5000", "--days", "10", "--out", str(tmp_path / "a.parquet")]) == 0
    csv = pd.read_csv(tmp_path / "a.csv")
    pq = pd.read_parquet(tmp_path / "a.parquet")
    assert len(csv) == len(pq) == 5000
    np.testing.assert_allclose(csv["amount"], pq["amount"])
    assert "wrote 5,000 transactions" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--rows", "5000", "--out", str(tmp_path / "a.txt")])
