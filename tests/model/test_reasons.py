"""Reasons: each row's score and its top impacts, computed from the model itself.

An impact is the model's score minus its score with one feature set to its
reference value; these tests recompute impacts directly and check that a row's
result depends on that row alone (not on the batch it came in).

``ScoringModel.score_with_reasons`` skips the counterfactual rows of a tree ensemble
that provably reach the row's own leaves (``app.pruning``). The tests below prove
the results bit-identical to running every counterfactual, on the demo model and
on a hand-built tree model where the exact set of counterfactuals is known.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from app.features import offline_features
from app.model import PRUNE_MIN_ROWS, ROW_BLOCK, ScoringModel, padded
from app.pruning import NotPrunable, tree_ensembles
from app.training.simulate import SimulationArgs, simulate


def record_runs(model: ScoringModel) -> list[np.ndarray]:
    """Every matrix ``model`` sends to its scoring session, in order (``del model.probabilities`` to stop)."""
    runs: list[np.ndarray] = []
    run = model.probabilities

    def spy(x: np.ndarray) -> np.ndarray:
        runs.append(x.copy())
        return run(x)

    model.probabilities = spy  # type: ignore[method-assign]
    return runs


# ---------------------------------------------------------------------------- demo model
@pytest.fixture(scope="module")
def demo_model(demo_dir) -> ScoringModel:
    model = ScoringModel(demo_dir[0])
    model.load()
    return model


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    """6,000 transactions of the simulator (3 % fraud, for more risky rows than the demo's 1 %)."""
    return offline_features(simulate(SimulationArgs(rows=6000, fraud_rate=0.03, days=9, seed=23)))


def test_demo_model_is_pruned(demo_model):
    assert demo_model.pruner is not None
    assert demo_model.pruner.trees > 10
    assert 0 < demo_model.pruner.split_features <= demo_model.n_features


@pytest.mark.parametrize("top_k", [3, 58])
def test_pruned_reasons_equal_all_counterfactuals_on_the_demo_model(demo_model, rows, top_k):
    """Same scores and the same (index, impact) reasons, bit for bit, with far fewer rows run."""
    runs = record_runs(demo_model)
    try:
        for start in range(0, len(rows), 1000):
            batch = rows[start:start + 1000]
            n_runs = len(runs)
            scores, reasons = demo_model.score_with_reasons(batch, top_k)
            pruned_rows = len(runs[n_runs])
            all_scores, all_reasons = demo_model.score_with_reasons(batch, top_k, prune=False)
            unpruned_rows = len(runs[n_runs + 1])
            assert scores.tobytes() == all_scores.tobytes()
            assert reasons == all_reasons
            assert sum(map(len, reasons)) > len(batch)  # plenty of reasons compared, not empty lists
            # 29 differing features per row on average, 11 that can reach another leaf
            assert pruned_rows < 0.6 * unpruned_rows
    finally:
        del demo_model.probabilities


def test_reasons_are_the_models_own_top_impacts(demo_model, rows):
    """Recomputed one row at a time: impact_j = p(x) - p(x with x_j = r_j), top 3 positive, highest first."""
    top_k, ref = 3, demo_model.reference
    scores, reasons = demo_model.score_with_reasons(rows[:300], top_k)
    for i, x in enumerate(rows[:300]):
        cf = np.tile(x, (len(ref) + 1, 1))
        cf[np.arange(1, len(ref) + 1), np.arange(len(ref))] = ref
        p = demo_model.probabilities(padded(cf))[:len(ref) + 1, 1].astype(np.float64)
        impact = p[0] - p[1:]
        assert scores[i] == p[0]
        listed = [j for j, _ in reasons[i]]
        assert [v for _, v in reasons[i]] == [impact[j] for j in listed]
        assert all(v > 0 for _, v in reasons[i]) and listed == sorted(listed, key=lambda j: -impact[j])
        others = np.delete(impact, listed)
        floor = reasons[i][-1][1] if len(listed) == top_k else 0.0
        assert (others <= floor).all()  # nothing left out is larger (ties may go either way)


def test_single_rows_and_small_batches_equal_the_big_batch(demo_model, rows):
    """A transaction gets the same score and reasons alone, in a batch of 16 and of 1,000,
    with reasons or without, pruned or not: a row's result depends on that row alone."""
    batch = rows[:1000]
    scores, reasons = demo_model.score_with_reasons(batch, 3)
    plain = demo_model.score_with_reasons(batch, 0)[0]
    assert plain.tobytes() == scores.tobytes()
    for i in range(0, 400):
        for prune in (True, False):
            s, r = demo_model.score_with_reasons(batch[i:i + 1], 3, prune=prune)
            assert (s[0], r[0]) == (scores[i], reasons[i])
    for start in range(400, 1000, 16):
        s, r = demo_model.score_with_reasons(batch[start:start + 16], 3)
        assert s.tobytes() == scores[start:start + 16].tobytes() and r == reasons[start:start + 16]


def test_every_run_is_padded_to_whole_blocks(demo_model, rows):
    runs = record_runs(demo_model)
    try:
        for n in (1, 3, 16, 17, 250):
            demo_model.score_with_reasons(rows[:n], 3)
            demo_model.score_with_reasons(rows[:n], 0)
    finally:
        del demo_model.probabilities
    assert len(runs) == 10 and [len(x) % ROW_BLOCK for x in runs] == [0] * 10
    np.testing.assert_array_equal(runs[3][:3], rows[:3])  # n=3 without reasons: the rows, then copies of the first
    np.testing.assert_array_equal(runs[3][3:], np.tile(rows[0], (ROW_BLOCK - 3, 1)))


# ---------------------------------------------------------------------------- a hand-built tree model
F = 6
F32_TENTH = float(np.float32(0.1))  # 0.100000001490116...: the float32 threshold "0.1", above 0.1 in float64
#: f4 is tested by no split; f5 sits exactly on its float32 threshold.
REFERENCE = [0.0, 0.0, 3.0, 0.0, 7.0, F32_TENTH]


def _trees(tensor_thresholds: type | None) -> onnx.NodeProto:
    """Four trees covering every branch mode and missing-value tracking.

    tree 0: f0 <= 0.1 ? (f1 < 0.5 ? -1.0 : 0.5) : 1.0
    tree 1: f2 == 3 ? -0.5 : (f0 > 5 ? 2.0 : 0.25)
    tree 2: f3 <= 1 (NaN: true) ? (f1 >= 2 ? 0.75 : (f3 != -1 ? -0.25 : 0.1)) : 1.5
    tree 3: f5 <= 0.1 (NaN: false) ? 0.3 : -0.3
    """
    # (tree, node, mode, feature, threshold, true node, false node, NaN goes true, leaf weight)
    nodes = [
        (0, 0, "BRANCH_LEQ", 0, 0.1, 1, 2, 0, None), (0, 1, "BRANCH_LT", 1, 0.5, 3, 4, 0, None),
        (0, 2, "LEAF", 0, 0.0, 0, 0, 0, 1.0), (0, 3, "LEAF", 0, 0.0, 0, 0, 0, -1.0), (0, 4, "LEAF", 0, 0.0, 0, 0, 0, 0.5),
        (1, 0, "BRANCH_EQ", 2, 3.0, 1, 2, 0, None), (1, 1, "LEAF", 0, 0.0, 0, 0, 0, -0.5),
        (1, 2, "BRANCH_GT", 0, 5.0, 3, 4, 0, None), (1, 3, "LEAF", 0, 0.0, 0, 0, 0, 2.0), (1, 4, "LEAF", 0, 0.0, 0, 0, 0, 0.25),
        (2, 0, "BRANCH_LEQ", 3, 1.0, 1, 2, 1, None), (2, 1, "BRANCH_GTE", 1, 2.0, 3, 4, 0, None),
        (2, 2, "LEAF", 0, 0.0, 0, 0, 0, 1.5), (2, 3, "LEAF", 0, 0.0, 0, 0, 0, 0.75),
        (2, 4, "BRANCH_NEQ", 3, -1.0, 5, 6, 0, None), (2, 5, "LEAF", 0, 0.0, 0, 0, 0, -0.25), (2, 6, "LEAF", 0, 0.0, 0, 0, 0, 0.1),
        (3, 0, "BRANCH_LEQ", 5, 0.1, 1, 2, 0, None), (3, 1, "LEAF", 0, 0.0, 0, 0, 0, 0.3), (3, 2, "LEAF", 0, 0.0, 0, 0, 0, -0.3),
    ]
    leaves = [n for n in nodes if n[2] == "LEAF"]
    values = [n[4] for n in nodes]
    thresholds = ({"nodes_values_as_tensor": numpy_helper.from_array(np.asarray(values, dtype=tensor_thresholds))}
                  if tensor_thresholds else {"nodes_values": values})
    return helper.make_node(
        "TreeEnsembleRegressor", ["input"], ["margin"], domain="ai.onnx.ml", n_targets=1,
        nodes_treeids=[n[0] for n in nodes], nodes_nodeids=[n[1] for n in nodes], nodes_modes=[n[2] for n in nodes],
        nodes_featureids=[n[3] for n in nodes], nodes_truenodeids=[n[5] for n in nodes],
        nodes_falsenodeids=[n[6] for n in nodes], nodes_missing_value_tracks_true=[n[7] for n in nodes],
        target_ids=[0] * len(leaves), target_treeids=[n[0] for n in leaves], target_nodeids=[n[1] for n in leaves],
        target_weights=[n[8] for n in leaves], **thresholds)


def tree_graph(tensor_thresholds: type | None = None, front: list[onnx.NodeProto] | None = None) -> onnx.ModelProto:
    """The trees, then a sigmoid into the ``probabilities`` [N, 2] the service reads.
    ``front``: nodes between the input and the trees (which then read ``features``)."""
    trees = _trees(tensor_thresholds)
    if front:
        trees.input[0] = "features"
    graph = helper.make_graph(
        (front or []) + [trees,
                         helper.make_node("Sigmoid", ["margin"], ["p1"]),
                         helper.make_node("Sub", ["one", "p1"], ["p0"]),
                         helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1)],
        "tiny_trees", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, F])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        initializer=[numpy_helper.from_array(np.asarray(1.0, dtype=np.float32), "one")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("ai.onnx.ml", 3 if tensor_thresholds else 1)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write_model(out: Path, model: onnx.ModelProto) -> Path:
    """A model directory around ``model``."""
    out.mkdir(parents=True, exist_ok=True)
    data = model.SerializeToString()
    (out / "model.onnx").write_bytes(data)
    (out / "model.json").write_text(json.dumps({
        "features": [f"f{j}" for j in range(F)], "version": "tiny-trees", "thresholds": {"review": 0.5, "decline": 0.9},
        "sha256": hashlib.sha256(data).hexdigest(), "reference": REFERENCE}))
    return out


def loaded(out: Path, model: onnx.ModelProto) -> ScoringModel:
    m = ScoringModel(write_model(out, model))
    m.load()
    return m


NAN = np.nan
BELOW_HALF = float(np.nextafter(np.float32(0.5), np.float32(0)))
#: Rows (reference values except where set) and the counterfactuals that can change the score.
CASES = [
    ({4: 1.0}, []),                                # f4: no split tests it
    ({0: F32_TENTH, 1: 0.25}, []),                 # f0 on the threshold in float32, f1 below 0.5: same leaves
    ({0: 3.0, 1: 0.7}, [0]),                       # f0 leaves tree 0's path, so its f1 split is off the row's path
    ({0: 6.0, 2: 4.0}, [0, 2]),                    # f2 == 3 fails, then f0 > 5: both change leaves
    ({3: NAN, 5: NAN}, [5]),                       # NaN f3 goes true as r3 = 0 does; NaN f5 goes false, r5 true
    ({3: 2.0}, [3]),                               # f3 <= 1 fails
    ({3: -1.0}, [3]),                              # f3 != -1 fails
    ({1: 2.0}, [1]),                               # f1 < 0.5 and f1 >= 2 both flip
    ({1: 0.5}, [1]),                               # strict: 0.5 < 0.5 is false
    ({1: BELOW_HALF}, []),                         # the float32 just below 0.5: same leaves
    ({5: 0.2}, [5]),                               # the runtime finds r5 <= 0.1 (float32); 0.2 is not
    ({5: 0.05}, []),                               # both <= 0.1
]


def case_rows() -> np.ndarray:
    x = np.tile(np.asarray(REFERENCE, dtype=np.float32), (len(CASES), 1))
    for i, (values, _) in enumerate(CASES):
        for j, v in values.items():
            x[i, j] = v
    return x


def differing(x: np.ndarray) -> list[tuple[int, list[int]]]:
    """Per row, the features that differ from the reference (NaN differs from everything)."""
    return [(i, [j for j in range(F) if not x[i, j] == REFERENCE[j]]) for i in range(len(x))]


def counterfactuals(x: np.ndarray, cases: list[tuple[int, list[int]]]) -> np.ndarray:
    """Row i with feature j set to its reference, for each (i, [j, ...]), in that order."""
    out = []
    for i, features in cases:
        for j in features:
            row = x[i].copy()
            row[j] = REFERENCE[j]
            out.append(row)
    return np.asarray(out, dtype=np.float32).reshape(-1, F)


def test_tiny_tree_model_runs_exactly_the_counterfactuals_that_can_change_the_score(tmp_path):
    model = loaded(tmp_path / "m", tree_graph())
    assert model.pruner is not None and model.pruner.trees == 4 and model.pruner.split_features == 5
    x = case_rows()
    n = len(x)
    expected = [(i, features) for i, (_, features) in enumerate(CASES)]
    want = counterfactuals(x, expected)
    runs = record_runs(model)
    try:
        scores, reasons = model.score_with_reasons(x, F)
        all_scores, all_reasons = model.score_with_reasons(x, F, prune=False)
    finally:
        del model.probabilities
    sent, m = runs[0], len(want)
    total = -(-(n + m) // ROW_BLOCK) * ROW_BLOCK
    assert m == 9 and len(sent) == total
    np.testing.assert_array_equal(sent[:n], x)
    np.testing.assert_array_equal(sent[n:n + m], want)  # exactly these, in this order
    np.testing.assert_array_equal(sent[n + m:], np.tile(x[0], (total - n - m, 1)))  # padding
    everything = counterfactuals(x, differing(x))  # unpruned: every differing feature
    assert len(everything) == 16
    np.testing.assert_array_equal(runs[1][n:n + 16], everything)
    assert scores.tobytes() == all_scores.tobytes()
    assert reasons == all_reasons
    # Reasons are the model's own score differences, highest first, positive only.
    p = model.probabilities(padded(np.concatenate([x, want])))[:, 1].astype(np.float64)
    cf = iter(range(n, n + m))
    impacts = [[(j, p[i] - p[next(cf)]) for j in features] for i, features in expected]
    assert reasons == [sorted([(j, v) for j, v in row if v > 0], key=lambda r: -r[1]) for row in impacts]
    assert [len(r) for r in reasons] == [0, 0, 1, 2, 0, 1, 1, 1, 1, 0, 0, 0]


def test_a_single_row_runs_every_counterfactual_two_rows_are_pruned(tmp_path):
    """PRUNE_MIN_ROWS: for one row the extra leaf run costs what pruning saves."""
    assert PRUNE_MIN_ROWS == 2
    model = loaded(tmp_path / "m", tree_graph())
    x = case_rows()[2:4]  # f0 = 3 and f1 = 0.7 (only f0 matters); f0 = 6 and f2 = 4 (both matter)
    runs = record_runs(model)
    try:
        model.score_with_reasons(x[:1], F)
        model.score_with_reasons(x, F)
    finally:
        del model.probabilities
    np.testing.assert_array_equal(runs[0][1:3], counterfactuals(x, [(0, [0, 1])]))
    np.testing.assert_array_equal(runs[1][2:5], counterfactuals(x, [(0, [0]), (1, [0, 2])]))
    assert [len(r) for r in runs] == [-(-3 // ROW_BLOCK) * ROW_BLOCK, -(-5 // ROW_BLOCK) * ROW_BLOCK]


def test_thresholds_as_a_float32_tensor_are_read_too(tmp_path):
    """ai.onnx.ml opset 3 may store thresholds as a tensor: same splits, same counterfactuals."""
    model = loaded(tmp_path / "m", tree_graph(tensor_thresholds=np.float32))
    assert model.pruner is not None and model.pruner.split_features == 5
    x = case_rows()
    runs = record_runs(model)
    try:
        scores, reasons = model.score_with_reasons(x, F)
        all_scores, all_reasons = model.score_with_reasons(x, F, prune=False)
    finally:
        del model.probabilities
    np.testing.assert_array_equal(runs[0][len(x):len(x) + 9],
                                  counterfactuals(x, [(i, features) for i, (_, features) in enumerate(CASES)]))
    assert scores.tobytes() == all_scores.tobytes() and reasons == all_reasons


def test_a_model_that_is_not_only_trees_runs_every_counterfactual(tmp_path):
    """A scaler in front of the trees: thresholds no longer apply to the input, so no pruning."""
    scaler = helper.make_node("Scaler", ["input"], ["features"], domain="ai.onnx.ml", offset=[0.0] * F, scale=[2.0] * F)
    model = loaded(tmp_path / "m", tree_graph(front=[scaler]))
    assert model.pruner is None
    x = case_rows()
    runs = record_runs(model)
    try:
        model.score_with_reasons(x, F)
    finally:
        del model.probabilities
    np.testing.assert_array_equal(runs[0][len(x):len(x) + 16], counterfactuals(x, differing(x)))


def test_the_service_tiny_linear_model_is_not_pruned(tmp_path):
    from tests.service.tiny_model import build_tiny_model

    model = ScoringModel(build_tiny_model(tmp_path / "linear"))
    model.load()
    assert model.pruner is None


def _attribute(model: onnx.ModelProto, name: str) -> onnx.AttributeProto:
    return next(a for a in model.graph.node[0].attribute if a.name == name)


def _unknown_mode(model: onnx.ModelProto) -> None:
    _attribute(model, "nodes_modes").strings[0] = b"BRANCH_MEMBER"


def _identity_reads_input(model: onnx.ModelProto) -> None:
    model.graph.node.insert(0, helper.make_node("Identity", ["input"], ["copy"]))


def _random_node(model: onnx.ModelProto) -> None:
    model.graph.node.append(helper.make_node("RandomUniform", [], ["noise"], shape=[1]))


def _subgraph(model: onnx.ModelProto) -> None:
    empty = helper.make_graph([], "branch", [], [])
    model.graph.node.append(helper.make_node("If", ["cond"], ["y"], then_branch=empty, else_branch=empty))


def _feature_out_of_range(model: onnx.ModelProto) -> None:
    _attribute(model, "nodes_featureids").ints[0] = F


def _child_is_itself(model: onnx.ModelProto) -> None:
    _attribute(model, "nodes_truenodeids").ints[0] = 0


def _double_input(model: onnx.ModelProto) -> None:
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.DOUBLE


def _double_thresholds(model: onnx.ModelProto) -> None:
    # ONNX Runtime refuses these on a float input; a runtime that took them might round them.
    values = _attribute(model, "nodes_values")
    tensor = numpy_helper.from_array(np.asarray(values.floats, dtype=np.float64))
    model.graph.node[0].attribute.remove(values)
    model.graph.node[0].attribute.append(helper.make_attribute("nodes_values_as_tensor", tensor))


@pytest.mark.parametrize("change, message", [
    (_unknown_mode, "unknown node modes"), (_identity_reads_input, "feeds ai.onnx.Identity"),
    (_random_node, "is random"), (_subgraph, "has a subgraph"), (_feature_out_of_range, "outside 0..5"),
    (_child_is_itself, "missing child"), (_double_input, "not one float32"),
    (_double_thresholds, "thresholds of type float64"),
])
def test_pruning_is_refused_unless_provably_exact(change, message):
    model = tree_graph()
    assert len(tree_ensembles(model, "input", F)) == 1
    change(model)
    with pytest.raises(NotPrunable, match=message):
        tree_ensembles(model, "input", F)


def test_a_misread_split_is_caught_at_load_and_turns_pruning_off(tmp_path, monkeypatch, caplog):
    """Load-time self-check: the runtime's leaves for the reference row must be the ones the
    splits we read predict. Reading BRANCH_LEQ as ``<`` sends r5 (on its threshold) the wrong way."""
    import app.pruning

    monkeypatch.setitem(app.pruning.MODES, b"BRANCH_LEQ", np.less)
    with caplog.at_level("INFO", logger="fraudstack.model"):
        model = loaded(tmp_path / "m", tree_graph())
    assert model.pruner is None
    assert "leaves for the reference row differ" in caplog.text
