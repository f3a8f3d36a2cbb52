"""Per-feature contributions of an XGBoost model to a score: the reasons behind a decision.

These are XGBoost's approximate contributions (`predict(pred_contribs=True,
approx_contribs=True)`, the Saabas method): along each tree's decision path, every split
credits its feature with the change in the node's mean value. XGBoost recomputes the node
means on every call, which costs ~0.6 ms for a single row; here they are computed once per
model and every tree is walked at once in numpy (tests check equality with XGBoost's own).

The walk knows numeric splits of one gbtree model with one output. Any other model (DART's
weighted trees, categorical splits, several classes or targets) is refused when it is
loaded, with the reason, rather than explained wrongly: the scorer then keeps the model it
serves, or does not start.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import xgboost as xgb


@dataclass(frozen=True)
class _Forest:
    """Every node of every tree in flat arrays; a leaf points to itself, so walking past it is a no-op."""

    roots: np.ndarray  # flat index of each tree's root
    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray  # float32, as XGBoost compares
    default_left: np.ndarray
    mean: np.ndarray  # cover-weighted mean of the leaf values below each node
    depth: int


class Contributions:
    """Computes per-feature contributions (in margin units) for rows of a model's inputs."""

    def __init__(self, booster: xgb.Booster) -> None:
        model = json.loads(booster.save_raw("json"))
        self.n_features = int(model["learner"]["learner_model_param"]["num_feature"])
        self.forest = _pack(_numeric_trees(model["learner"], list(booster.feature_names or [])))
        self.bias = float(self.forest.mean[self.forest.roots].sum())

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        """Contributions per row and feature (rows x features); their sum plus the bias is the margin.

        Every tree is walked at once in numpy: faster than XGBoost's own call for 1 row (~50x)
        and for 1,000 (~2.5x, benchmarks/reasons.py).
        """
        forest, rows = self.forest, matrix.shape[0]
        values = matrix.astype(np.float32).ravel()
        row_offset = (np.arange(rows) * self.n_features)[:, None]
        node = np.broadcast_to(forest.roots, (rows, len(forest.roots)))
        totals = np.zeros(rows * self.n_features, dtype=np.float64)
        for _ in range(forest.depth):
            slot = row_offset + forest.feature[node]
            x = values[slot]
            go_left = np.where(np.isnan(x), forest.default_left[node], x < forest.threshold[node])
            child = np.where(go_left, forest.left[node], forest.right[node])
            totals += np.bincount(
                slot.ravel(), weights=(forest.mean[child] - forest.mean[node]).ravel(), minlength=len(totals)
            )
            node = child
        return totals.reshape(rows, self.n_features)


class UnexplainableModel(ValueError):
    """A model whose reasons this module cannot compute; the message says what to retrain."""


def _numeric_trees(learner: dict, feature_names: list[str]) -> list[dict]:
    """The trees of a single-output gbtree model with numeric splits only, or the reason it is not one."""
    booster = learner["gradient_booster"]
    if booster.get("name") != "gbtree":
        raise UnexplainableModel(
            f"the model is a {booster.get('name')!r} booster; reasons are computed for "
            "'gbtree' models only: retrain it with booster='gbtree'"
        )
    outputs = max(int(learner["learner_model_param"].get(key, "0") or 0) for key in ("num_class", "num_target"))
    if outputs > 1:
        raise UnexplainableModel(
            f"the model gives {outputs} outputs; reasons are computed for one fraud score: "
            "retrain it with objective binary:logistic"
        )
    trees: list[dict] = booster["model"]["trees"]
    for tree in trees:
        categorical = [i for i, kind in enumerate(tree.get("split_type", [])) if kind != 0]
        if categorical:
            index = int(tree["split_indices"][categorical[0]])
            name = feature_names[index] if index < len(feature_names) else f"input {index}"
            raise UnexplainableModel(
                f"the model splits on {name!r} as a category; reasons follow numeric splits "
                "only: retrain it with numeric inputs (no enable_categorical)"
            )
    return trees


def _pack(trees: list[dict]) -> _Forest:
    sizes = [len(t["left_children"]) for t in trees]
    roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    left, right, feature, threshold, default_left, mean = [], [], [], [], [], []
    depth = 0
    for root, tree in zip(roots, trees):
        tree_left = np.asarray(tree["left_children"], dtype=np.int64)
        tree_right = np.asarray(tree["right_children"], dtype=np.int64)
        is_leaf = tree_left == -1
        own = root + np.arange(len(tree_left))
        left.append(np.where(is_leaf, own, root + tree_left))
        right.append(np.where(is_leaf, own, root + tree_right))
        feature.append(np.where(is_leaf, 0, np.asarray(tree["split_indices"], dtype=np.int64)))
        threshold.append(np.asarray(tree["split_conditions"], dtype=np.float32))
        default_left.append(np.asarray(tree["default_left"], dtype=bool))
        tree_mean, tree_depth = _node_means(
            tree_left,
            tree_right,
            np.asarray(tree["split_conditions"]),
            np.asarray(tree["sum_hessian"], dtype=np.float64),
        )
        mean.append(tree_mean)
        depth = max(depth, tree_depth)
    return _Forest(
        roots=roots,
        left=np.concatenate(left),
        right=np.concatenate(right),
        feature=np.concatenate(feature),
        threshold=np.concatenate(threshold),
        default_left=np.concatenate(default_left),
        mean=np.concatenate(mean),
        depth=depth,
    )


def _node_means(
    left: np.ndarray, right: np.ndarray, leaf_values: np.ndarray, cover: np.ndarray
) -> tuple[np.ndarray, int]:
    """XGBoost's FillNodeMeanValues: a leaf's value; a split's children averaged by cover."""
    mean = np.zeros(len(left))

    def fill(node: int) -> int:
        if left[node] == -1:
            mean[node] = leaf_values[node]
            return 0
        depth = 1 + max(fill(left[node]), fill(right[node]))
        mean[node] = (mean[left[node]] * cover[left[node]] + mean[right[node]] * cover[right[node]]) / cover[node]
        return depth

    return mean, fill(0)
