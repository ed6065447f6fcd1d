"""Capacity model: pods, nodes and monthly cost per stack for a range of daily volumes.

    python -m tools.capacity            # writes docs/CAPACITY.md
    python -m tools.capacity --check    # exit 1 if docs/CAPACITY.md is out of date

Inputs, all in the repository:
- the measured per-worker throughput and p99 of ``/v1/score``, from the machine-readable
  line in ``docs/BENCHMARKS.md``:
  ``<!-- capacity: scores_per_worker_per_s=<n> p99_ms=<n> p99_at_rps=<n> -->``
  (written by whoever runs ``python -m bench.run``; the prose around it says how);
- load assumptions and prices (with their date and region) in ``docs/capacity/inputs.yaml``;
- each stack's pod shape and HPA (``fraudstack:app``), node instance type and sizes, AZs,
  NAT, endpoints, database and cache, from ``Pulumi.<stack>.yaml`` validated by
  ``StackConfig``.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "docs" / "BENCHMARKS.md"
INPUTS = ROOT / "docs" / "capacity" / "inputs.yaml"
OUTPUT = ROOT / "docs" / "CAPACITY.md"
STACKS = ("staging", "production")
SECONDS_PER_DAY = 86_400
BLOCK = re.compile(r"<!--\s*capacity:(?P<body>[^>]*?)-->")
BENCH_KEYS = ("scores_per_worker_per_s", "p99_ms", "p99_at_rps")


class CapacityInputError(ValueError):
    """An input file is missing a value or holds a wrong one; the message names it."""


@dataclass(frozen=True)
class Benchmark:
    """Measured figures of one uvicorn worker on one CPU core."""

    scores_per_worker_per_s: float
    """Saturation throughput of ``/v1/score`` (single transactions)."""
    p99_ms: float
    """p99 latency at ``p99_at_rps`` offered requests per second."""
    p99_at_rps: float


@dataclass(frozen=True)
class StackShape:
    """What a stack's config fixes for the model."""

    name: str
    az_count: int
    nat_gateways: int
    interface_endpoints: int
    cpu_instance_type: str
    cpu_min_nodes: int
    cpu_max_nodes: int
    gpu_instance_type: str
    gpu_min_nodes: int
    db_instance_class: str
    db_multi_az: bool
    cache_node_type: str
    cache_nodes: int
    workers_per_pod: int
    cpu_per_pod: float
    memory_gib_per_pod: float
    min_replicas: int
    max_replicas: int
    hpa_cpu_target: float
    """HPA target as a share of the CPU request (``app.cpuTargetPercent`` / 100)."""
    p99_alarm_ms: float = 0.0
    """The stack's p99 latency alarm threshold (``alarms.service.p99LatencyMs``)."""

    @property
    def per_pod_rate(self) -> float:
        """Share of a pod's saturation throughput (per measured worker) it carries at the HPA target."""
        return self.workers_per_pod * self.hpa_cpu_target


@dataclass(frozen=True)
class Row:
    """The sizing of one stack at one daily volume."""

    per_day: int
    avg_tps: float
    peak_tps: float
    pods: int
    nodes: int
    over_max: bool
    over_hpa: bool
    """More pods than ``app.maxReplicas``: the HPA stops short of the peak."""
    compute_monthly: float
    fixed_monthly: float

    @property
    def total_monthly(self) -> float:
        return self.compute_monthly + self.fixed_monthly


def read_benchmark(path: Path = BENCHMARKS) -> Benchmark:
    """The ``<!-- capacity: ... -->`` line of ``path``; errors name the file and the key."""
    if not path.is_file():
        raise CapacityInputError(f"{path}: missing (run `python -m bench.run` and record the capacity line)")
    blocks = BLOCK.findall(path.read_text(encoding="utf-8"))
    if len(blocks) != 1:
        raise CapacityInputError(f"{path}: expected exactly one `<!-- capacity: ... -->` line, found {len(blocks)}")
    values: dict[str, float] = {}
    for item in blocks[0].split():
        key, sep, raw = item.partition("=")
        if not sep:
            raise CapacityInputError(f"{path}: capacity line: {item!r} is not key=value")
        if key not in BENCH_KEYS:
            raise CapacityInputError(f"{path}: capacity line: unknown key {key!r} (known: {', '.join(BENCH_KEYS)})")
        try:
            values[key] = float(raw)
        except ValueError:
            raise CapacityInputError(f"{path}: capacity line: {key}={raw!r} is not a number") from None
        if not values[key] > 0:
            raise CapacityInputError(f"{path}: capacity line: {key} must be positive, got {raw}")
    missing = [k for k in BENCH_KEYS if k not in values]
    if missing:
        raise CapacityInputError(f"{path}: capacity line: missing {', '.join(missing)}")
    return Benchmark(**values)


def read_inputs(path: Path = INPUTS) -> dict[str, Any]:
    """The assumptions and prices file, with the keys the model needs checked."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key in ("model", "volumes_per_day", "region", "currency", "as_of", "hours_per_month", "instances", "services", "database", "cache"):
        if key not in data:
            raise CapacityInputError(f"{path}: missing {key}")
    for key in ("peak_factor", "node_reserved_vcpu", "node_reserved_memory_gib"):
        if key not in data["model"]:
            raise CapacityInputError(f"{path}: missing model.{key}")
    if not data["model"]["peak_factor"] >= 1:
        raise CapacityInputError(f"{path}: model.peak_factor must be at least 1")
    return data


def stack_shape(stack: str) -> StackShape:
    """A stack's config reduced to what the model needs (validated like the program does)."""
    import pulumi

    from components.app_config import cpu_millicores
    from components.config import NatStrategy, load_stack_config
    from components.endpoints import SERVICES
    from tools.plan import stack_config

    flat, secrets = stack_config(stack)
    pulumi.runtime.set_all_config(flat, secrets)
    cfg = load_stack_config()
    az = cfg.network.az_count
    return StackShape(
        name=stack,
        az_count=az,
        nat_gateways=az if cfg.network.nat_strategy is NatStrategy.PER_AZ else 1,
        interface_endpoints=sum(1 for key in SERVICES if getattr(cfg.endpoints, key)),
        cpu_instance_type=cfg.cluster.cpu_nodes.instance_types[0],
        cpu_min_nodes=cfg.cluster.cpu_nodes.min_size,
        cpu_max_nodes=cfg.cluster.cpu_nodes.max_size,
        gpu_instance_type=cfg.cluster.gpu_nodes.instance_types[0],
        gpu_min_nodes=cfg.cluster.gpu_nodes.min_size,
        db_instance_class=cfg.database.instance_class,
        db_multi_az=cfg.database.multi_az,
        cache_node_type=cfg.cache.node_type,
        cache_nodes=1 + cfg.cache.replicas,
        workers_per_pod=cfg.app.workers,
        cpu_per_pod=cpu_millicores(cfg.app.resources.cpu) / 1000,
        memory_gib_per_pod=cfg.app.resources.mebibytes("memory") / 1024,
        min_replicas=cfg.app.min_replicas,
        max_replicas=cfg.app.max_replicas,
        hpa_cpu_target=cfg.app.cpu_target_percent / 100,
        p99_alarm_ms=float(cfg.alarms.service.p99_latency_ms),
    )


def _price(table: dict[str, Any], key: str, what: str) -> Any:
    if key not in table:
        raise CapacityInputError(f"{INPUTS.name}: no {what} price for {key!r}; add it with the others")
    return table[key]


def pods_per_node(instance: dict[str, Any], model: dict[str, Any], shape: StackShape) -> int:
    """Scoring pods one node holds after the system reservation (CPU or memory, whichever binds)."""
    by_cpu = (instance["vcpu"] - model["node_reserved_vcpu"]) / shape.cpu_per_pod
    by_memory = (instance["memory_gib"] - model["node_reserved_memory_gib"]) / shape.memory_gib_per_pod
    fits = math.floor(min(by_cpu, by_memory) + 1e-9)
    if fits < 1:
        raise CapacityInputError("a scoring pod does not fit on the CPU instance type after the system reservation")
    return fits


def fixed_monthly(shape: StackShape, inputs: dict[str, Any]) -> dict[str, float]:
    """Monthly cost of what runs whatever the traffic, by part."""
    hours = inputs["hours_per_month"]
    svc = inputs["services"]
    gpu = _price(inputs["instances"], shape.gpu_instance_type, "instance")
    db = _price(inputs["database"], shape.db_instance_class, "database")
    cache = _price(inputs["cache"], shape.cache_node_type, "cache")
    return {
        "EKS control plane": svc["eks_cluster"] * hours,
        f"NAT gateways ({shape.nat_gateways})": svc["nat_gateway"] * shape.nat_gateways * hours,
        f"interface endpoints ({shape.interface_endpoints} x {shape.az_count} AZ)": svc["interface_endpoint_az"]
        * shape.interface_endpoints * shape.az_count * hours,
        f"RDS {shape.db_instance_class}{' Multi-AZ' if shape.db_multi_az else ''}": db * (2 if shape.db_multi_az else 1) * hours,
        f"ElastiCache {shape.cache_node_type} x {shape.cache_nodes}": cache * shape.cache_nodes * hours,
        f"warm GPU nodes ({shape.gpu_min_nodes} x {shape.gpu_instance_type})": gpu["hourly"] * shape.gpu_min_nodes * hours,
    }


def size(per_day: int, shape: StackShape, bench: Benchmark, inputs: dict[str, Any]) -> Row:
    """Pods and nodes for ``per_day`` transactions, with the HPA's headroom."""
    model = inputs["model"]
    avg = per_day / SECONDS_PER_DAY
    peak = avg * model["peak_factor"]
    per_pod_at_target = bench.scores_per_worker_per_s * shape.per_pod_rate
    pods = max(shape.min_replicas, math.ceil(peak / per_pod_at_target))
    instance = _price(inputs["instances"], shape.cpu_instance_type, "instance")
    nodes = max(shape.cpu_min_nodes, math.ceil(pods / pods_per_node(instance, model, shape)))
    compute = nodes * instance["hourly"] * inputs["hours_per_month"]
    return Row(
        per_day=per_day,
        avg_tps=avg,
        peak_tps=peak,
        pods=pods,
        nodes=nodes,
        over_max=nodes > shape.cpu_max_nodes,
        over_hpa=pods > shape.max_replicas,
        compute_monthly=compute,
        fixed_monthly=sum(fixed_monthly(shape, inputs).values()),
    )


def _volume(n: int) -> str:
    for div, unit in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
        if n >= div and n % div == 0:
            return f"{n // div} {unit}"
    return f"{n:,}"


def render(bench: Benchmark, inputs: dict[str, Any], shapes: Sequence[StackShape]) -> str:
    """docs/CAPACITY.md, from the three inputs only (no clock, no environment)."""
    model, cur = inputs["model"], inputs["currency"]
    out = [
        "# Capacity model",
        "",
        "Generated by `python -m tools.capacity` from `docs/BENCHMARKS.md` (measured), "
        "`docs/capacity/inputs.yaml` (assumptions and prices) and the stack files. Do not edit: "
        "change an input and regenerate; `tests/delivery/test_capacity.py` fails while this file is stale.",
        "",
        "## Inputs",
        "",
        f"- Measured: one uvicorn worker on one core scores **{bench.scores_per_worker_per_s:g} transactions/s** "
        f"at saturation; p99 **{bench.p99_ms:g} ms** at {bench.p99_at_rps:g} requests/s (see BENCHMARKS.md for the machine and command).",
        f"- Peak factor **{model['peak_factor']:g}**: the busiest hour runs at {model['peak_factor']:g}x the daily average.",
        "- Pods as each stack configures them (`fraudstack:app`: workers, CPU and memory requests, "
        "min/max replicas, HPA CPU target). A pod is sized to carry its workers' measured saturation "
        "times the HPA target; the rest is headroom while the HPA and the Cluster Autoscaler add pods and nodes.",
        f"- Per node {model['node_reserved_vcpu']:g} vCPU and {model['node_reserved_memory_gib']:g} GiB stay "
        "reserved for the kubelet and DaemonSets.",
        f"- Prices: on-demand, {inputs['region']}, {cur}, as of **{inputs['as_of']}**, {inputs['hours_per_month']} hours a month "
        "(source and caveats in `docs/capacity/inputs.yaml`). Traffic-dependent charges (NAT and endpoint data "
        "processing, load balancer LCUs, CloudWatch, storage and backups, Bedrock tokens) are not included.",
        "",
    ]
    for shape in shapes:
        instance = inputs["instances"][shape.cpu_instance_type]
        ppn = pods_per_node(instance, model, shape)
        fixed = fixed_monthly(shape, inputs)
        per_pod = bench.scores_per_worker_per_s * shape.per_pod_rate
        ceiling_nodes = math.ceil(shape.max_replicas / ppn)
        out += [
            f"## {shape.name}",
            "",
            f"Pod: {shape.workers_per_pod} worker{'' if shape.workers_per_pod == 1 else 's'}, "
            f"{shape.cpu_per_pod:g} vCPU, {shape.memory_gib_per_pod:g} GiB; HPA {shape.min_replicas}-{shape.max_replicas} "
            f"replicas at {shape.hpa_cpu_target:.0%} CPU, so a pod carries {per_pod:,.0f} transactions/s and the HPA's "
            f"ceiling is {shape.max_replicas * per_pod:,.0f}/s.",
            "",
            f"CPU nodes: `{shape.cpu_instance_type}` ({instance['vcpu']} vCPU, {instance['memory_gib']} GiB, "
            f"{instance['hourly']:.4f} {cur}/h), {ppn} scoring pod{'' if ppn == 1 else 's'} per node; the stack allows "
            f"{shape.cpu_min_nodes}-{shape.cpu_max_nodes} nodes (`fraudstack:cluster.cpuNodes`).",
            "",
            *_p99_warning(bench, shape),
            *_ceiling_warning(shape, ceiling_nodes),
            "| transactions/day | average/s | peak/s | pods | CPU nodes | compute/month | fixed/month | total/month |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        notes, hpa_notes = [], []
        for per_day in inputs["volumes_per_day"]:
            row = size(per_day, shape, bench, inputs)
            flag = " *" if row.over_max else ""
            pod_flag = " †" if row.over_hpa else ""
            out.append(
                f"| {_volume(per_day)} | {row.avg_tps:,.0f} | {row.peak_tps:,.0f} | {row.pods}{pod_flag} | {row.nodes}{flag} | "
                f"{row.compute_monthly:,.0f} | {row.fixed_monthly:,.0f} | {row.total_monthly:,.0f} |"
            )
            if row.over_hpa:
                hpa_notes.append(_volume(per_day))
            if row.over_max:
                notes.append(
                    f"{_volume(per_day)}/day needs {row.nodes} CPU nodes: raise `cluster.cpuNodes.maxSize` "
                    f"(now {shape.cpu_max_nodes}) before that volume arrives."
                )
        out.append("")
        if hpa_notes:
            out += [f"† more pods than `app.maxReplicas` ({shape.max_replicas}) at {', '.join(hpa_notes)}/day: "
                    "raise it (and the node group with it) before that volume arrives.", ""]
        if notes:
            out += ["\\* over the configured maximum: " + " ".join(notes), ""]
        out += [f"Fixed part ({cur}/month):", ""]
        out += [f"- {part}: {cost:,.0f}" for part, cost in fixed.items()]
        out.append("")
    out += [
        "## Reading the table",
        "",
        "- Pods = max(`app.minReplicas`, ceil(peak/s / per-pod rate at the HPA target)); nodes = max(the group's "
        "minimum, ceil(pods / pods per node)). `app.maxReplicas` must be at least the pods column, and "
        "`cluster.cpuNodes.maxSize` at least the nodes column, or the peak queues.",
        "- The model scales the scoring tier only. The database and the cache stay at their configured size: at "
        "100 M/day and above the audit trail receives over a thousand inserts a second at peak; load-test RDS "
        "(instance class, IOPS) and Redis (node type, shards) at that rate before relying on these rows.",
        *(_latency_note(bench, bench.scores_per_worker_per_s * shape.per_pod_rate / shape.workers_per_pod, shape.name)
          for shape in shapes),
        "",
    ]
    return "\n".join(out)


def _p99_warning(bench: Benchmark, shape: StackShape) -> list[str]:
    if not shape.p99_alarm_ms or bench.p99_ms <= shape.p99_alarm_ms:
        return []
    return [
        f"**The measured p99 ({bench.p99_ms:g} ms) is above this stack's p99 alarm "
        f"(`alarms.service.p99LatencyMs` = {shape.p99_alarm_ms:g} ms):** at these figures the pods below "
        "would keep the alarm firing. Re-measure on a quiet machine (BENCHMARKS.md) before using this "
        "table for a budget.",
        "",
    ]


def _ceiling_warning(shape: StackShape, ceiling_nodes: int) -> list[str]:
    if ceiling_nodes <= shape.cpu_max_nodes:
        return []
    return [
        f"**The HPA cannot reach its maximum:** {shape.max_replicas} pods (`app.maxReplicas`) need {ceiling_nodes} "
        f"`{shape.cpu_instance_type}` nodes, `cluster.cpuNodes.maxSize` is {shape.cpu_max_nodes}; the pods beyond "
        "stay Pending at the peak. Raise `maxSize`, or use a larger instance type that packs the pods better.",
        "",
    ]


def _latency_note(bench: Benchmark, per_worker: float, stack: str = "") -> str:
    where = f" ({stack})" if stack else ""
    if per_worker <= bench.p99_at_rps:
        verdict = (f"each worker is loaded with at most {per_worker:,.0f}/s, no more than that rate, so {bench.p99_ms:g} ms "
                   "bounds the service's own p99")
    else:
        verdict = (f"each worker is loaded with up to {per_worker:,.0f}/s, more than that rate: measure the p99 at "
                   f"that rate (`python -m bench.run --rates {math.ceil(per_worker)}`) before relying on it")
    return (f"- Latency{where}: the p99 was measured at {bench.p99_at_rps:g} requests/s on one worker; {verdict}. "
            "A client also sees the network and the load balancer.")


def build() -> str:
    """The document from the files in the repository."""
    return render(read_benchmark(BENCHMARKS), read_inputs(INPUTS), [stack_shape(s) for s in STACKS])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write docs/CAPACITY.md from the benchmark, the inputs and the stack files.")
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/CAPACITY.md is out of date, write nothing")
    args = parser.parse_args(argv)
    try:
        text = build()
    except CapacityInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.is_file() else ""
        if current != text:
            print(f"{OUTPUT.relative_to(ROOT)} is out of date: run python -m tools.capacity", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
