"""Reasons: our walk of the booster's trees gives XGBoost's own approximate contributions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from serving.explain import Contributions, UnexplainableModel


@pytest.fixture(scope="module")
def booster() -> xgb.Booster:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 6))
    x[rng.uniform(size=x.shape) < 0.05] = np.nan  # missing values take the default branch
    y = ((np.nan_to_num(x[:, 0]) + x[:, 1] ** 2 > 1) ^ (rng.uniform(size=2000) < 0.05)).astype(int)
    return xgb.train(
        {"objective": "binary:logistic", "max_depth": 5, "tree_method": "exact", "base_score": 0.5},
        xgb.DMatrix(x, label=y, missing=np.nan),
        30,
    )


def test_contributions_equal_xgboost_approx_contributions(booster: xgb.Booster) -> None:
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(300, 6))
    rows[rng.uniform(size=rows.shape) < 0.1] = np.nan
    theirs = booster.predict(xgb.DMatrix(rows, missing=np.nan), pred_contribs=True, approx_contribs=True)
    ours = Contributions(booster)
    np.testing.assert_allclose(ours(rows), theirs[:, :-1], atol=1e-5)
    np.testing.assert_allclose(ours(rows[:1]), theirs[:1, :-1], atol=1e-5)
    assert ours.bias == pytest.approx(float(theirs[0, -1]), abs=1e-5)


def test_contributions_add_up_to_the_margin(booster: xgb.Booster) -> None:
    rows = np.random.default_rng(2).normal(size=(50, 6))
    margin = booster.predict(xgb.DMatrix(rows), output_margin=True)
    ours = Contributions(booster)
    np.testing.assert_allclose(ours(rows).sum(axis=1) + ours.bias, margin, atol=1e-4)


def test_a_model_with_categorical_splits_is_refused_with_the_feature_named() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {"channel": pd.Categorical(rng.choice(["web", "app", "pos"], 600)), "amount": rng.uniform(0, 100, 600)}
    )
    labels = (frame["channel"] == "web").astype(int)
    booster = xgb.train(
        {"objective": "binary:logistic", "tree_method": "hist"},
        xgb.DMatrix(frame, label=labels, enable_categorical=True),
        5,
    )
    with pytest.raises(UnexplainableModel, match="splits on 'channel' as a category"):
        Contributions(booster)


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"objective": "binary:logistic", "booster": "dart"}, "'dart' booster"),
        ({"objective": "multi:softprob", "num_class": 3}, "3 outputs"),
    ],
)
def test_models_the_walk_cannot_explain_are_refused(params: dict, problem: str) -> None:
    rng = np.random.default_rng(4)
    rows = rng.normal(size=(300, 3))
    labels = rng.integers(0, params.get("num_class", 2), 300)
    booster = xgb.train(params, xgb.DMatrix(rows, label=labels), 3)
    with pytest.raises(UnexplainableModel, match=problem):
        Contributions(booster)
