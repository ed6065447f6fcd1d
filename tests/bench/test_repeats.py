"""bench.repeats: the spread of several bench.run results, judged against the targets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.repeats import main


def _result(path: Path, sat: float, p99_1000_ms: float, degraded: int) -> Path:
    path.write_text(json.dumps({
        "saturation": {"throughput_rps": sat, "p99_us": 8000.0},
        "fixed_rate": [{"offered_rps": 500, "p99_us": 1.0}, {"offered_rps": 1000, "p99_us": p99_1000_ms * 1000}],
        "counters": {"degraded": degraded}, "batch": {"round_trip_ms_median": 140.0},
    }))
    return path


def test_medians_and_target_counts(tmp_path: Path, capsys: Any) -> None:
    files = [_result(tmp_path / "a.json", 2900.4, 9.5, 0), _result(tmp_path / "b.json", 3100.0, 3.0, 12),
             _result(tmp_path / "c.json", 3050.0, 4.0, 0)]
    assert main([str(f) for f in files]) == 0
    out = capsys.readouterr().out
    assert "| b.json | 3100 | 8.00 | 3.00 | 12 | 140.0 |" in out
    assert "| median of 3 | 3050 | 8.00 | 4.00 | 0 | 140.0 |" in out
    assert "saturation >= 3,000/s in 2 of 3 runs; p99 at 1,000/s < 5 ms in 2 of 3; runs with degraded scores: 1" in out


def test_no_files_is_an_error(capsys: Any) -> None:
    assert main([]) == 2
    assert "name the bench/results" in capsys.readouterr().err
