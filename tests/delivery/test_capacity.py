"""The capacity model: parsing the measured figures, the sizing arithmetic, and
docs/CAPACITY.md kept in sync with `python -m tools.capacity`."""

from __future__ import annotations

import copy

import pytest

from tools import capacity
from tools.capacity import Benchmark, CapacityInputError, StackShape, read_benchmark, read_inputs, size

BENCH = Benchmark(scores_per_worker_per_s=1000, p99_ms=5, p99_at_rps=800)
SHAPE = StackShape(
    name="t", az_count=3, nat_gateways=3, interface_endpoints=6, cpu_instance_type="m7i.xlarge",
    cpu_min_nodes=3, cpu_max_nodes=12, gpu_instance_type="g6.xlarge", gpu_min_nodes=1,
    db_instance_class="db.r7g.large", db_multi_az=True, cache_node_type="cache.r7g.large", cache_nodes=3,
    workers_per_pod=1, cpu_per_pod=1.0, memory_gib_per_pod=1.0, min_replicas=3, max_replicas=60, hpa_cpu_target=0.6,
)


@pytest.fixture(scope="module")
def inputs():
    return read_inputs()


def write(tmp_path, text):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- the benchmark line


def test_reads_the_capacity_line(tmp_path):
    path = write(tmp_path, "# B\n\n<!-- capacity: scores_per_worker_per_s=980.5 p99_ms=4.2 p99_at_rps=500 -->\nprose\n")
    assert read_benchmark(path) == Benchmark(980.5, 4.2, 500)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no line here", "expected exactly one `<!-- capacity: ... -->` line, found 0"),
        ("<!-- capacity: p99_ms=1 p99_at_rps=1 -->", "missing scores_per_worker_per_s"),
        ("<!-- capacity: scores_per_worker_per_s=fast p99_ms=1 p99_at_rps=1 -->", "scores_per_worker_per_s='fast' is not a number"),
        ("<!-- capacity: scores_per_worker_per_s=0 p99_ms=1 p99_at_rps=1 -->", "scores_per_worker_per_s must be positive"),
        ("<!-- capacity: scores_per_worker_per_s=1 p99_ms=1 p99_at_rps=1 rps=3 -->", "unknown key 'rps'"),
        ("<!-- capacity: scores_per_worker_per_s=1 p99_ms -->", "'p99_ms' is not key=value"),
        ("<!-- capacity: scores_per_worker_per_s=1 p99_ms=1 p99_at_rps=1 -->\n" * 2, "found 2"),
    ],
)
def test_a_bad_capacity_line_names_what_is_wrong(tmp_path, text, message):
    with pytest.raises(CapacityInputError) as err:
        read_benchmark(write(tmp_path, text))
    assert message in str(err.value)
    assert str(tmp_path / "BENCHMARKS.md") in str(err.value)


def test_missing_benchmarks_file(tmp_path):
    with pytest.raises(CapacityInputError, match="missing"):
        read_benchmark(tmp_path / "nope.md")


# --------------------------------------------------------------------------- the arithmetic


def test_pods_carry_only_the_hpa_target_share_and_nodes_hold_what_fits(inputs):
    # 1 B/day = 11,574/s average, 34,722/s at the peak factor of 3; a pod carries 60% of
    # 1,000/s = 600/s; so 58 pods; an m7i.xlarge holds floor((4 - 0.6) / 1) = 3 of them.
    row = size(1_000_000_000, SHAPE, BENCH, inputs)
    assert round(row.avg_tps) == 11_574 and round(row.peak_tps) == 34_722
    assert row.pods == 58
    assert capacity.pods_per_node(inputs["instances"]["m7i.xlarge"], inputs["model"], SHAPE) == 3
    assert row.nodes == 20 and row.over_max
    assert not row.over_hpa
    assert row.compute_monthly == pytest.approx(20 * 0.2243 * 730)


def test_two_worker_pods_carry_twice_and_pack_by_their_cpu(inputs):
    from dataclasses import replace

    big = replace(SHAPE, workers_per_pod=2, cpu_per_pod=2.0, max_replicas=24)
    row = size(1_000_000_000, big, BENCH, inputs)
    # 1,200/s per pod -> 29 pods; floor((4 - 0.6) / 2) = 1 pod per m7i.xlarge -> 29 nodes
    assert (row.pods, row.nodes, row.over_hpa, row.over_max) == (29, 29, True, True)


def test_small_volumes_stay_at_the_minimums(inputs):
    row = size(1_000_000, SHAPE, BENCH, inputs)
    assert (row.pods, row.nodes, row.over_max) == (3, 3, False)


def test_fixed_part_counts_every_always_on_piece(inputs):
    parts = capacity.fixed_monthly(SHAPE, inputs)
    assert parts == pytest.approx({
        "EKS control plane": 0.10 * 730,
        "NAT gateways (3)": 0.048 * 3 * 730,
        "interface endpoints (6 x 3 AZ)": 0.011 * 18 * 730,
        "RDS db.r7g.large Multi-AZ": 0.2630 * 2 * 730,
        "ElastiCache cache.r7g.large x 3": 0.2290 * 3 * 730,
        "warm GPU nodes (1 x g6.xlarge)": 0.8960 * 730,
    })


def test_memory_can_bind_before_cpu(inputs):
    from dataclasses import replace

    assert capacity.pods_per_node({"vcpu": 4, "memory_gib": 16}, inputs["model"], replace(SHAPE, memory_gib_per_pod=6.0)) == 2


def test_an_instance_without_a_price_is_named(inputs):
    broken = copy.deepcopy(inputs)
    del broken["instances"]["m7i.xlarge"]
    with pytest.raises(CapacityInputError, match="no instance price for 'm7i.xlarge'"):
        size(1_000_000, SHAPE, BENCH, broken)


def test_stack_shapes_come_from_the_stack_files():
    prod = capacity.stack_shape("production")
    assert prod == StackShape(
        name="production", az_count=3, nat_gateways=3, interface_endpoints=6, cpu_instance_type="m7i.xlarge",
        cpu_min_nodes=3, cpu_max_nodes=12, gpu_instance_type="g6.xlarge", gpu_min_nodes=1,
        db_instance_class="db.r7g.large", db_multi_az=True, cache_node_type="cache.r7g.large", cache_nodes=3,
        workers_per_pod=2, cpu_per_pod=2.0, memory_gib_per_pod=2.0, min_replicas=3, max_replicas=24, hpa_cpu_target=0.6,
        p99_alarm_ms=50,
    )
    staging = capacity.stack_shape("staging")
    assert (staging.nat_gateways, staging.gpu_min_nodes, staging.db_multi_az, staging.cache_nodes) == (1, 0, False, 1)


def test_prices_state_region_and_date(inputs):
    assert inputs["region"] == "eu-west-1" and inputs["currency"] == "USD"
    assert str(inputs["as_of"]) == "2026-11-22"
    assert inputs["volumes_per_day"] == [1_000_000, 10_000_000, 100_000_000, 1_000_000_000]


def test_a_p99_above_the_stacks_alarm_is_called_out():
    from dataclasses import replace

    assert capacity._p99_warning(BENCH, replace(SHAPE, p99_alarm_ms=50)) == []
    slow = Benchmark(scores_per_worker_per_s=800, p99_ms=216, p99_at_rps=800)
    (warning, _) = capacity._p99_warning(slow, replace(SHAPE, p99_alarm_ms=50))
    assert "measured p99 (216 ms) is above this stack's p99 alarm" in warning and "= 50 ms" in warning


def test_latency_note_tells_when_the_measured_p99_does_not_cover_the_pod_rate():
    assert "bounds the service's own p99" in capacity._latency_note(BENCH, 600)
    assert "--rates 900" in capacity._latency_note(BENCH, 900)


def test_an_hpa_ceiling_the_node_group_cannot_hold_is_called_out():
    from dataclasses import replace

    assert capacity._ceiling_warning(SHAPE, 12) == []
    (warning, _) = capacity._ceiling_warning(replace(SHAPE, max_replicas=24), 24)
    assert "24 pods (`app.maxReplicas`) need 24 `m7i.xlarge` nodes, `cluster.cpuNodes.maxSize` is 12" in warning


# --------------------------------------------------------------------------- the document


def test_capacity_doc_is_in_sync_with_the_command():
    assert capacity.OUTPUT.read_text(encoding="utf-8") == capacity.build(), "run: python -m tools.capacity"


def test_the_benchmarks_file_holds_the_capacity_line():
    bench = read_benchmark(capacity.BENCHMARKS)
    assert bench.scores_per_worker_per_s > 0 and bench.p99_ms > 0


def test_check_mode_fails_on_a_stale_doc(tmp_path, monkeypatch):
    stale = tmp_path / "CAPACITY.md"
    stale.write_text("old\n")
    monkeypatch.setattr(capacity, "BENCHMARKS", write(tmp_path, "<!-- capacity: scores_per_worker_per_s=700 p99_ms=9 p99_at_rps=400 -->"))
    monkeypatch.setattr(capacity, "OUTPUT", stale)
    monkeypatch.setattr(capacity, "ROOT", tmp_path)
    assert capacity.main(["--check"]) == 1
    assert stale.read_text() == "old\n"
    assert capacity.main([]) == 0
    assert capacity.main(["--check"]) == 0
    assert "scores **700 transactions/s**" in stale.read_text()
