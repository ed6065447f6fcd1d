"""Which counterfactuals can change a tree ensemble's score: exact pruning of reasons.

A reason's impact is the score change when feature j alone is set to its reference
value r_j (``app.model``). In a tree ensemble, that counterfactual row follows the
row's own path in every tree except at the splits on feature j along that path,
where it goes the way r_j goes. If r_j goes towards the row's leaf at every such
split, in every tree, the counterfactual reaches the same leaves, its score is the
row's own score, and the impact is exactly 0: that row need not be run. Whether
r_j keeps to the path depends only on the leaf (the path is the leaf's), not on
x_j, so it is computed once per leaf at load time as a bit mask over the features
("r_j leaves this path"). At scoring time ONNX Runtime itself finds each row's leaf
in every tree (a companion graph with the same nodes, whose outputs are leaf
numbers, so the traversal is the runtime's own, in its precision and with its
missing-value rules), and the masks of those leaves, OR-ed together, say which
counterfactuals can change the score.

Pruning is only claimed when it is provably exact: every node that reads the model
input is an ``ai.onnx.ml`` TreeEnsembleClassifier/Regressor, nothing else reads it
(no subgraphs, no random ops), the input is float32, every node mode is a known
one and every tree is a tree. Anything else (a linear model, a scaler in front of
the trees, the opset-5 ``TreeEnsemble`` op) keeps the unpruned method: one
counterfactual per feature that differs from its reference.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import AttributeProto, TensorProto, helper, numpy_helper

log = logging.getLogger("fraudstack.model")

TREE_OPS = frozenset({"TreeEnsembleClassifier", "TreeEnsembleRegressor"})
#: Ops whose output is not a function of their inputs: the score itself would not be.
RANDOM_OPS = frozenset({"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
                        "Bernoulli", "Multinomial"})
#: Every node mode of the ai.onnx.ml tree ensembles (opsets 1-3) and the comparison that
#: sends a value to the node's true branch, as ONNX Runtime evaluates it.
MODES = {
    b"BRANCH_LEQ": np.less_equal, b"BRANCH_LT": np.less, b"BRANCH_GTE": np.greater_equal,
    b"BRANCH_GT": np.greater, b"BRANCH_EQ": np.equal, b"BRANCH_NEQ": np.not_equal,
}
LEAF = b"LEAF"
#: Leaf numbers travel as float32 outputs of the companion graph: exact below 2**24.
MAX_LEAVES = 1 << 24


class NotPrunable(ValueError):
    """The graph is not (only) tree ensembles over the input: no exact pruning."""


@dataclass(frozen=True)
class Ensemble:
    """One tree-ensemble node: its split nodes, as the runtime sees them."""

    node: onnx.NodeProto
    feature: np.ndarray     # int64 [nodes]
    mode: list[bytes]       # [nodes]
    value: np.ndarray       # float32 [nodes]: the runtime compares the float32 input with these
    true_child: np.ndarray  # index of the true child, -1 for a leaf
    false_child: np.ndarray
    tree_ids: np.ndarray
    node_ids: np.ndarray
    roots: list[int]        # one per tree, in tree order

    @property
    def leaves(self) -> np.ndarray:
        """Indices of the leaf nodes."""
        return np.asarray([i for i, m in enumerate(self.mode) if m == LEAF], dtype=np.int64)


def _ints(attrs: dict[str, AttributeProto], name: str) -> np.ndarray:
    if name not in attrs:
        raise NotPrunable(f"tree ensemble without {name}")
    return np.asarray(attrs[name].ints, dtype=np.int64)


def _ensemble(node: onnx.NodeProto, n_features: int) -> Ensemble:
    attrs = {a.name: a for a in node.attribute}
    if "nodes_values_as_tensor" in attrs:
        value = numpy_helper.to_array(attrs["nodes_values_as_tensor"].t).reshape(-1)
        if value.dtype != np.float32:
            # ONNX Runtime 1.31 refuses double thresholds on a float input; whether another
            # version would compare in double or round them to float is not ours to guess.
            raise NotPrunable(f"{node.op_type}: thresholds of type {value.dtype}, not float32")
    elif "nodes_values" in attrs:
        value = np.asarray(attrs["nodes_values"].floats, dtype=np.float32)  # proto floats are float32
    else:
        raise NotPrunable(f"{node.op_type}: no node thresholds")
    feature, tree_ids, node_ids = (_ints(attrs, k) for k in ("nodes_featureids", "nodes_treeids", "nodes_nodeids"))
    true_ids, false_ids = _ints(attrs, "nodes_truenodeids"), _ints(attrs, "nodes_falsenodeids")
    mode = list(attrs["nodes_modes"].strings) if "nodes_modes" in attrs else []
    n = len(node_ids)
    if not (len(feature) == len(tree_ids) == len(true_ids) == len(false_ids) == len(mode) == len(value) == n):
        raise NotPrunable(f"{node.op_type}: node attributes of different lengths")
    unknown = set(mode) - set(MODES) - {LEAF}
    if unknown:
        raise NotPrunable(f"{node.op_type}: unknown node modes {sorted(m.decode(errors='replace') for m in unknown)}")
    index = {(int(t), int(i)): k for k, (t, i) in enumerate(zip(tree_ids, node_ids))}
    if len(index) != n:
        raise NotPrunable(f"{node.op_type}: duplicate (tree, node) ids")
    true_child, false_child = np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int64)
    parents = np.zeros(n, dtype=np.int64)
    for k in range(n):
        if mode[k] == LEAF:
            continue
        if not 0 <= feature[k] < n_features:
            raise NotPrunable(f"{node.op_type}: a split tests feature {feature[k]}, outside 0..{n_features - 1}")
        t = int(tree_ids[k])
        for ids, child in ((true_ids, true_child), (false_ids, false_child)):
            c = index.get((t, int(ids[k])))
            if c is None or c == k:
                raise NotPrunable(f"{node.op_type}: tree {t} node {node_ids[k]} has a missing child")
            child[k] = c
            parents[c] += 1
    if (parents > 1).any():
        raise NotPrunable(f"{node.op_type}: a node has two parents (not a tree)")
    roots: dict[int, int] = {}
    for k in np.flatnonzero(parents == 0):
        t = int(tree_ids[k])
        if t in roots:
            raise NotPrunable(f"{node.op_type}: tree {t} has more than one root")
        roots[t] = int(k)
    if set(roots) != {int(t) for t in tree_ids}:
        raise NotPrunable(f"{node.op_type}: a tree without a root (a cycle)")
    return Ensemble(node, feature, mode, value, true_child, false_child, tree_ids, node_ids,
                    [roots[t] for t in sorted(roots)])


def tree_ensembles(model: onnx.ModelProto, input_name: str, n_features: int) -> list[Ensemble]:
    """The tree ensembles that alone read ``input_name``; ``NotPrunable`` otherwise."""
    g = model.graph
    declared = [i for i in g.input if i.name == input_name]
    if len(declared) != 1 or declared[0].type.tensor_type.elem_type != TensorProto.FLOAT:
        raise NotPrunable(f"input {input_name!r} is not one float32 tensor")
    if any(o.name == input_name for o in g.output):
        raise NotPrunable("the input is also a graph output")
    nodes = []
    for node in g.node:
        if any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) for a in node.attribute):
            # A subgraph may read the input by name without listing it.
            raise NotPrunable(f"{node.op_type} node {node.name!r} has a subgraph")
        if node.op_type in RANDOM_OPS:
            raise NotPrunable(f"{node.op_type} node {node.name!r} is random")
        if input_name in node.input:
            if node.domain != "ai.onnx.ml" or node.op_type not in TREE_OPS:
                raise NotPrunable(f"the input feeds {node.domain or 'ai.onnx'}.{node.op_type}, not only tree ensembles")
            nodes.append(node)
    if not nodes:
        raise NotPrunable("no tree ensemble reads the input")
    return [_ensemble(node, n_features) for node in nodes]


def leaf_masks(ens: Ensemble, reference: np.ndarray) -> np.ndarray:
    """Boolean ``[nodes, F]``: at a leaf, True for the features whose reference value leaves its path.

    Feature j's counterfactual reaches the same leaf iff the reference value r_j
    goes towards that leaf at every split on j along its path; the comparison is
    the node's own (``MODES``), float32 against the stored float32 threshold as in
    the runtime (a threshold written as 0.1 is float32(0.1); compared in float64
    with 0.1, a float32(0.1) input would wrongly be above it). A NaN
    reference takes missing-value branches: it is marked as leaving every path
    through a split on its feature, so it is always computed.
    """
    n, f = len(ens.mode), len(reference)
    masks = np.zeros((n, f), dtype=bool)
    ref = reference.astype(np.float32)
    stack = [(root, np.zeros(f, dtype=bool)) for root in ens.roots]
    while stack:
        k, off = stack.pop()
        if ens.mode[k] == LEAF:
            masks[k] = off
            continue
        j = int(ens.feature[k])
        if np.isnan(ref[j]):
            goes_true = None
        else:
            goes_true = bool(MODES[ens.mode[k]](ref[j], ens.value[k]))
        for child, branch in ((ens.true_child[k], True), (ens.false_child[k], False)):
            if goes_true is None or goes_true != branch:
                child_off = off.copy()
                child_off[j] = True
            else:
                child_off = off
            stack.append((int(child), child_off))
    return masks


def reference_leaves(ens: Ensemble, reference: np.ndarray) -> list[int] | None:
    """The leaf the reference row reaches in each tree (None if a NaN decides its path)."""
    ref = reference.astype(np.float32)
    out = []
    for k in ens.roots:
        while ens.mode[k] != LEAF:
            j = int(ens.feature[k])
            if np.isnan(ref[j]):
                return None
            k = int(ens.true_child[k] if MODES[ens.mode[k]](ref[j], ens.value[k]) else ens.false_child[k])
        out.append(k)
    return out


def leaf_graph(model: onnx.ModelProto, ensembles: list[Ensemble], input_name: str, n_features: int,
               offsets: list[int]) -> onnx.ModelProto:
    """A graph with the same split nodes whose output per tree is the number of the leaf reached.

    Each ensemble becomes a TreeEnsembleRegressor with one target per tree and, at
    each leaf, the weight ``offset + node index`` on its tree's target (the sum of one
    weight over one leaf per tree: exact). Outputs ``leaves_<e>`` float32 ``[N, trees]``.
    """
    nodes, outputs = [], []
    for e, (ens, offset) in enumerate(zip(ensembles, offsets)):
        tree_index = {int(ens.tree_ids[r]): t for t, r in enumerate(ens.roots)}
        leaves = ens.leaves
        copied = {a.name: helper.get_attribute_value(a) for a in ens.node.attribute if a.name.startswith("nodes_")}
        out = f"leaves_{e}"
        nodes.append(helper.make_node(
            "TreeEnsembleRegressor", [input_name], [out], domain="ai.onnx.ml", name=f"leaf_numbers_{e}",
            n_targets=len(ens.roots), aggregate_function="SUM", post_transform="NONE",
            target_ids=[tree_index[int(ens.tree_ids[k])] for k in leaves],
            target_treeids=ens.tree_ids[leaves].tolist(), target_nodeids=ens.node_ids[leaves].tolist(),
            target_weights=[float(offset + k) for k in leaves], **copied))
        outputs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, [None, len(ens.roots)]))
    graph = helper.make_graph(nodes, "leaf_numbers", [helper.make_tensor_value_info(input_name, TensorProto.FLOAT,
                                                                                    [None, n_features])], outputs)
    ml = max([o.version for o in model.opset_import if o.domain == "ai.onnx.ml"] or [1])
    default = max([o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] or [17])
    out_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("ai.onnx.ml", ml),
                                                        helper.make_opsetid("", default)])
    out_model.ir_version = model.ir_version
    onnx.checker.check_model(out_model)
    return out_model


class Pruner:
    """Says which counterfactual rows can change the score, with one extra ONNX run over the rows only."""

    def __init__(self, ensembles: list[Ensemble], model: onnx.ModelProto, input_name: str, reference: np.ndarray,
                 opts: ort.SessionOptions) -> None:
        f = len(reference)
        offsets, total = [], 0
        for ens in ensembles:
            offsets.append(total)
            total += len(ens.mode)
        if total >= MAX_LEAVES:
            raise NotPrunable(f"{total} tree nodes: leaf numbers would not be exact in float32")
        masks = np.concatenate([leaf_masks(ens, reference) for ens in ensembles])
        self.split_features = int(masks.any(axis=0).sum())
        # One bit per feature, packed into 64-bit words: OR-ing a row's leaves is then one
        # gather and one reduction over a few words per tree.
        words = -(-f // 64)
        packed = np.packbits(np.pad(masks, ((0, 0), (0, words * 64 - f))), axis=1, bitorder="little")
        self._words = np.ascontiguousarray(packed).view(np.uint64)  # [nodes, words]
        self._f = f
        graph = leaf_graph(model, ensembles, input_name, f, offsets)
        self._session = ort.InferenceSession(graph.SerializeToString(), sess_options=opts,
                                             providers=["CPUExecutionProvider"])
        self._input = input_name
        self.trees = sum(len(e.roots) for e in ensembles)
        # Self-check: the runtime's leaves for the reference row are the ones our reading of
        # the splits predicts (numbering, modes and float32 comparisons all agree).
        walked = [reference_leaves(ens, reference) for ens in ensembles]
        if all(w is not None for w in walked):
            want = [offset + k for w, offset in zip(walked, offsets) for k in w]  # type: ignore[union-attr]
            got = self.leaves(reference.astype(np.float32).reshape(1, -1))[0].tolist()
            if got != want:
                raise NotPrunable("the runtime's leaves for the reference row differ from the splits read from the graph")

    def leaves(self, x: np.ndarray) -> np.ndarray:
        """Leaf node numbers ``[N, trees]`` (numbering of the concatenated ensembles)."""
        out = self._session.run(None, {self._input: x})
        return (out[0] if len(out) == 1 else np.concatenate(out, axis=1)).astype(np.intp)

    def may_change(self, x: np.ndarray) -> np.ndarray:
        """Boolean ``[N, F]``: False where setting ``x[i, j]`` to the reference provably leaves the score as is."""
        bits = np.bitwise_or.reduce(self._words[self.leaves(x)], axis=1)  # [N, words]
        return np.unpackbits(bits.view(np.uint8), axis=1, count=self._f, bitorder="little").view(bool)


def pruner(onnx_path: Path, input_name: str, reference: np.ndarray, opts: ort.SessionOptions) -> Pruner | None:
    """A ``Pruner`` for an ONNX tree ensemble, or None (logged) when pruning would not be exact."""
    try:
        model = onnx.load(str(onnx_path))
        result = Pruner(tree_ensembles(model, input_name, len(reference)), model, input_name, reference, opts)
    except NotPrunable as exc:
        log.info("reasons: one counterfactual per differing feature (%s)", exc)
        return None
    except Exception as exc:  # the scoring session loaded this file; failing here only costs speed
        log.warning("reasons: cannot prune counterfactuals (%s: %s); one per differing feature",
                    type(exc).__name__, str(exc)[:200])
        return None
    log.info("reasons: tree ensemble of %d trees, counterfactuals pruned to the splits on each row's paths "
             "(%d of %d features split)", result.trees, result.split_features, len(reference))
    return result
