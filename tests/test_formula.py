"""scanfit.data.formula: designs from Wilkinson formulas (through formulaic), re-applied to new frames, saved as JSON.

Checked against statsmodels' formula API on data that ships with it (``fair``, ``anes96``) and against
``formulaic.model_matrix`` directly; unsafe formula text is refused before formulaic sees it.
"""

from __future__ import annotations

import dataclasses
import json

import formulaic
import numpy as np
import pandas as pd
import pytest

from scanfit.data.formula import Formula

sm = pytest.importorskip("statsmodels.api")
smf = pytest.importorskip("statsmodels.formula.api")

FAIR = "affairs ~ rate_marriage + age + C(religious) + np.log(yrs_married + 1)"


@pytest.fixture(scope="module")
def fair() -> pd.DataFrame:
    return sm.datasets.fair.load_pandas().data


@pytest.fixture(scope="module")
def anes() -> pd.DataFrame:
    return sm.datasets.anes96.load_pandas().data


@pytest.fixture
def small() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 30
    return pd.DataFrame({"y": rng.normal(size=n), "x1": rng.normal(size=n), "income": rng.uniform(1, 5, n),
                         "region": list("abc") * 10, "t": list("uv") * 15, "b": [True, False, False] * 10})


def _statsmodels(formula: str, data: pd.DataFrame, intercept: bool) -> tuple[list[str], np.ndarray, np.ndarray]:
    model = smf.ols(formula, data)
    cut = 1 if intercept else 0
    return model.exog_names[cut:], model.exog[:, cut:], model.endog


def test_fair_matches_statsmodels(fair):
    spec = Formula.build(FAIR, fair)
    y, X = spec.design(fair)
    names, exog, endog = _statsmodels(FAIR, fair, intercept=True)
    assert smf.ols(FAIR, fair).exog_names[0] == "Intercept"
    assert spec.target == "affairs" and spec.intercept is True
    assert spec.names == tuple(names)
    assert "C(religious)[T.2.0]" in spec.names and "np.log(yrs_married + 1)" in spec.names
    assert X.dtype == np.float64 and y.dtype == np.float64
    assert X.shape == (len(fair), len(spec.names)) and y.shape == (len(fair),)
    np.testing.assert_array_equal(X, exog)
    np.testing.assert_array_equal(y, endog)


@pytest.mark.parametrize("formula", [
    "vote ~ age + C(educ) * TVnews + center(selfLR)",
    "vote ~ TVnews + C(PID) + np.log(income) + I(age ** 2)",
    "vote ~ C(PID) + age - 1",
])
def test_anes96_matches_statsmodels(anes, formula):
    spec = Formula.build(formula, anes)
    y, X = spec.design(anes)
    names, exog, endog = _statsmodels(formula, anes, spec.intercept)
    assert spec.intercept is ("- 1" not in formula)
    assert spec.names == tuple(names)
    np.testing.assert_allclose(X, exog, rtol=1e-14, atol=1e-12)
    np.testing.assert_array_equal(y, endog)


@pytest.mark.parametrize("formula", [FAIR, "affairs ~ C(occupation) * age + poly(educ, 2) + scale(children)"])
def test_matches_formulaic_model_matrix(fair, formula):
    spec = Formula.build(formula, fair)
    y, X = spec.design(fair)
    mm = formulaic.model_matrix(formula, fair, cluster_by="numerical_factors")
    rhs = mm.rhs.drop(columns="Intercept")
    assert spec.names == tuple(rhs.columns)
    np.testing.assert_array_equal(X, rhs.to_numpy(dtype=float))
    np.testing.assert_array_equal(y, mm.lhs.to_numpy(dtype=float)[:, 0])


def test_text_and_boolean_columns(small):
    formula = "y ~ x1 + t + b + region"  # text columns without C() are categorical; booleans are 0/1 (formulaic)
    spec = Formula.build(formula, small)
    _, X = spec.design(small)
    assert spec.names == ("t[T.v]", "region[T.b]", "region[T.c]", "x1", "b")
    mm = formulaic.model_matrix(formula, small, cluster_by="numerical_factors").rhs.drop(columns="Intercept")
    assert tuple(mm.columns) == spec.names
    np.testing.assert_array_equal(X, mm.to_numpy(dtype=float))
    np.testing.assert_array_equal(X[:, spec.names.index("b")], small["b"].to_numpy(dtype=float))
    assert json.loads(json.dumps(spec.to_json()))["state"]["rhs"]["encoder_state"]["region"]["levels"] == ["a", "b", "c"]


@pytest.mark.parametrize("formula", ["affairs ~ C(religious) + age - 1", "affairs ~ C(religious) + age + 0",
                                     "affairs ~ 0 + C(religious) + age"])
def test_no_intercept(fair, formula):
    spec = Formula.build(formula, fair)
    _, X = spec.design(fair)
    names, exog, _ = _statsmodels(formula, fair, intercept=False)
    assert spec.intercept is False
    assert spec.names == tuple(names) == ("C(religious)[1.0]", "C(religious)[2.0]", "C(religious)[3.0]",
                                          "C(religious)[4.0]", "age")  # full rank: no intercept to absorb a level
    np.testing.assert_array_equal(X, exog)


def test_intercept_only(small):
    spec = Formula.build("y ~ 1", small)
    y, X = spec.design(small)
    assert spec.names == () and spec.intercept is True and X.shape == (len(small), 0)


def _reordered_subset(fair: pd.DataFrame) -> list[int]:
    """Rows in a shuffled order whose religious levels are a strict subset of the training levels."""
    rows = fair.index[fair["religious"].isin([2.0, 4.0])][:40].tolist()
    return list(np.random.default_rng(1).permutation(rows))


@pytest.mark.parametrize("formula", [
    FAIR, "affairs ~ C(religious):age + center(educ) + poly(yrs_married, 2) + bs(age, df=4) + scale(children)"])
def test_features_on_a_reordered_subset(fair, formula):
    spec = Formula.build(formula, fair)
    _, X = spec.design(fair)
    rows = _reordered_subset(fair)
    new = fair.loc[rows].reset_index(drop=True).iloc[:, ::-1]  # other row order, other column order, fresh index
    assert set(new["religious"]) < set(fair["religious"])
    np.testing.assert_allclose(spec.features(new), X[rows], rtol=1e-13, atol=1e-13)
    loaded = Formula.from_json(json.loads(json.dumps(spec.to_json())))
    np.testing.assert_allclose(loaded.features(new), X[rows], rtol=1e-13, atol=1e-13)
    # center/poly/bs/scale keep what they learned on the whole frame: relearning on the subset would differ
    if "center" in formula:
        fresh = formulaic.model_matrix(formula, new, cluster_by="numerical_factors").rhs
        assert not np.allclose(fresh["center(educ)"], X[rows, spec.names.index("center(educ)")])


def test_unseen_level_is_an_error(fair):
    spec = Formula.build(FAIR, fair)
    new = fair.head(5).copy()
    new.loc[new.index[2], "religious"] = 7.0
    with pytest.raises(ValueError, match="religious") as err:
        spec.features(new)
    assert "[7.0]" in str(err.value) and "known levels: [1.0, 2.0, 3.0, 4.0]" in str(err.value)


def test_unseen_text_level_names_the_column(small):
    spec = Formula.build("y ~ x1 + region", small)
    new = small.assign(region=["a", "b", "zz"] * 10)
    with pytest.raises(ValueError, match=r"column 'region' has values not seen .*\['zz'\]; known levels: \['a', 'b', 'c'\]"):
        spec.features(new)


def test_unseen_level_of_a_computed_factor(small):
    spec = Formula.build("y ~ C(income > 0.5)", small)  # every training income is above 1: one level, True
    assert spec.names == () and json.loads(spec.state)["rhs"]["encoder_state"]["C(income > 0.5)"]["levels"] == [True]
    with pytest.raises(ValueError, match="False"):
        spec.features(small.assign(income=small["income"] - 3.0))
    with pytest.raises(ValueError, match="'c'"):  # levels given in the formula leave out a value of the data
        Formula.build("y ~ C(region, levels=['a', 'b'])", small)


def test_missing_columns_are_named(fair):
    spec = Formula.build(FAIR, fair)
    with pytest.raises(ValueError, match=r"columns not in the data: \['age', 'religious'\]"):
        spec.features(fair.drop(columns=["age", "religious"]))
    X = spec.features(fair.drop(columns=["affairs"]))  # the target is not needed for features
    assert X.shape == (len(fair), len(spec.names))
    with pytest.raises(ValueError, match=r"columns not in the data: \['affairs'\]"):
        spec.design(fair.drop(columns=["affairs"]))
    with pytest.raises(ValueError, match=r"columns not in the data: \['income'\]"):
        Formula.build("affairs ~ np.log(income)", fair)


def test_missing_values_are_refused_not_dropped(fair):
    bad = fair.head(50).copy()
    bad.loc[bad.index[7], "age"] = np.nan
    with pytest.raises(ValueError, match=r"column 'age' has a missing value at row 7 \(index 7\)"):
        Formula.build(FAIR, bad)
    spec = Formula.build(FAIR, fair)
    with pytest.raises(ValueError, match=r"column 'age' has a missing value at row 7"):
        spec.features(bad)
    text = fair.head(6).assign(religious=["1", "2", None, "1", "2", "1"])
    with pytest.raises(ValueError, match=r"column 'religious' has a missing value at row 2"):
        Formula.build("affairs ~ religious", text)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_values_that_are_not_finite_are_refused(fair):
    zero = fair.head(20).copy()
    zero.loc[zero.index[3], "yrs_married"] = -1.0  # np.log(0) = -inf
    with pytest.raises(ValueError, match=r"'np.log\(yrs_married \+ 1\)' is -inf at row 3"):
        Formula.build(FAIR, zero)
    with pytest.raises(ValueError, match=r"is -inf at row 3"):
        Formula.build(FAIR, fair).features(zero)


def test_target_must_be_one_column(small):
    with pytest.raises(ValueError, match="the target must be one numeric column"):
        Formula.build("region ~ x1", small)
    spec = Formula.build("np.log(income) ~ x1", small)
    y, _ = spec.design(small)
    assert spec.target == "np.log(income)"
    np.testing.assert_allclose(y, np.log(small["income"]))


def test_json_round_trip(small):
    formula = ("y ~ x1 * C(region) + t + b + np.log(income) + sqrt(income) + center(x1) + scale(income) "
               "+ poly(x1, 3) + bs(income, df=4) + C(t, contr.treatment(base='v')) + C(region, levels=['c', 'a', 'b'])"
               " + I(x1 ** 2 + (income > 2))")
    spec = Formula.build(formula, small)
    saved = spec.to_json()
    text = json.dumps(saved, allow_nan=False)
    loaded = Formula.from_json(json.loads(text))
    assert loaded == spec and hash(loaded) == hash(spec)
    assert loaded.to_json() == saved
    assert saved["formula"] == formula and saved["names"] == list(spec.names) and saved["intercept"] is True
    rhs = saved["state"]["rhs"]
    assert rhs["encoder_state"]["C(region)"] == {"kind": "categorical", "levels": ["a", "b", "c"]}
    assert rhs["encoder_state"]["C(region, levels=['c', 'a', 'b'])"]["levels"] == ["c", "a", "b"]
    assert {"center(x1)", "scale(income)", "poly(x1, 3)", "bs(income, df=4)"} <= set(rhs["transform_state"])
    for a, b in zip(spec.design(small), loaded.design(small)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.names = ()


def test_multiline_formula_is_kept_on_one_line(small):
    spec = Formula.build("y ~ x1\n    + C(region)", small)
    assert spec.text == "y ~ x1 + C(region)"
    assert Formula.from_json(spec.to_json()) == spec


def test_columns_with_spaces_and_signs_are_named_with_q(small):
    """Q("a name"), as in patsy and statsmodels: the design is statsmodels', its names show the columns'."""
    import scanfit as sf

    data = small.rename(columns={"x1": "mean radius", "region": "region (a/b)", "y": "y value"})
    text = 'Q("y value") ~ Q("mean radius") + C(Q("region (a/b)")) + np.log(Q("mean radius") + 10)'
    spec = Formula.build(text, data)
    ref = smf.ols(text, data)
    y, X = spec.design(data)
    np.testing.assert_allclose(np.column_stack([np.ones(len(X)), X]), ref.exog, rtol=1e-12)
    assert spec.target == "y value" and spec.names == tuple(n.replace('Q("', "").replace('")', "")
                                                             for n in ref.exog_names[1:])
    assert Formula.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    r = sf.fit(sf.Linear(), sf.Gaussian(), formula=text, data=data)
    np.testing.assert_allclose(r.summary()["estimate"].to_numpy(), ref.fit().params.to_numpy(), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(r.predict(data.head(5)), ref.fit().predict(data.head(5)), rtol=1e-9)


def test_contrasts_as_statsmodels_users_write_them(small):
    spec = Formula.build("y ~ C(region, contr.sum)", small)  # without brackets, as formulaic takes it
    ref = smf.ols("y ~ C(region, Sum)", small)
    np.testing.assert_allclose(spec.design(small)[1], ref.exog[:, 1:], rtol=1e-12)
    with pytest.raises(ValueError, match=r"patsy's Treatment is written contr.treatment\(base=...\) here"):
        Formula.build("y ~ C(region, Treatment(reference='b'))", small)


MALICIOUS = [
    "y ~ __import__('os').system('touch {pwned}')",
    "y ~ I(__import__('os').system('touch {pwned}'))",
    "y ~ x1.__class__",
    "y ~ np.log(x1).__class__.__bases__",
    "y ~ I((lambda: 1)())",
    "y ~ I([a for a in x1])",
    "y ~ I({{a: 1 for a in x1}})",
    "y ~ eval('1')",
    "y ~ exec('import os')",
    "y ~ open('{pwned}', 'w')",
    "y ~ getattr(x1, 'real')",
    "y ~ np.random.rand(3)",
    "y ~ np.save('{pwned}', x1)",
    "y ~ np.log(x1, out=x1)",
    "y ~ np.log(x1, x1)",
    "y ~ I(x1)[0]",
    "y ~ I(__builtins__)",
    "y ~ x1 + {{x1 + 1}}",
    "y ~ `x1`",
    "y ~ I(x1 if x1 else x1)",
    "y ~ I(9 ** 9 ** 9)",
    "y ~ C(x1, levels=['a)', 'b'])",
    "y ~ x1 # comment",
    "y ~ x1 | region",
    "y ~ x1 ~ region",
    "y ~ poly(x1, 100000)",
    "y ~ \uff3f\uff3fimport\uff3f\uff3f('os')",
    "y ~ Q('x1').__class__",
    "y ~ Q(x1)",
    "y ~ Q('x1`')",
    "y ~ C(region, contr.__class__)",
    "y ~ contr.sum",
]


@pytest.mark.parametrize("template", MALICIOUS)
def test_unsafe_formulas_are_refused_before_formulaic(small, template, tmp_path, monkeypatch):
    formula = template.format(pwned=tmp_path / "pwned")
    saved = Formula.build("y ~ x1", small).to_json()

    def parse(*args, **kwargs):
        raise AssertionError("formulaic saw a refused formula")

    monkeypatch.setattr(formulaic, "Formula", parse)
    with pytest.raises(ValueError, match="refused"):
        Formula.build(formula, small)
    with pytest.raises(ValueError, match="refused"):
        Formula.from_json({**saved, "formula": formula})
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned.npy").exists()


@pytest.mark.parametrize("change", [
    lambda d: d["state"]["rhs"]["encoder_state"].update(x1={"kind": "python"}),
    lambda d: d["state"]["rhs"]["encoder_state"].update(x1={"kind": "categorical", "levels": [{"a": 1}]}),
    lambda d: d["state"]["rhs"]["transform_state"].update({"center(x1)": {"pickle": "gASVAAAA"}}),
    lambda d: d["state"]["rhs"]["transform_state"].update({"center(x1)": {"array": [{"dict": []}], "dtype": "<f8"}}),
    lambda d: d["state"]["rhs"]["transform_state"].update({"center(x1)": {"array": [1.0], "dtype": "O"}}),
    lambda d: d["state"].pop("lhs"),
    lambda d: d.update(version=2),
    lambda d: d.update(names="x1"),
    lambda d: d.update(intercept=1),
    lambda d: d.update(formula="y ~ x1\n"),
])
def test_tampered_saved_formulas_are_refused(small, change):
    saved = json.loads(json.dumps(Formula.build("y ~ center(x1)", small).to_json()))
    change(saved)
    with pytest.raises(ValueError):
        Formula.from_json(saved)


def test_saved_names_must_match_what_the_formula_gives(small):
    saved = Formula.build("y ~ x1 + region", small).to_json()
    loaded = Formula.from_json({**saved, "names": ["x1", "region[T.b]", "region[T.c]"]})
    with pytest.raises(ValueError, match="gives the columns"):
        loaded.features(small)


def test_only_dataframes(small):
    spec = Formula.build("y ~ x1", small)
    with pytest.raises(TypeError, match="DataFrame"):
        spec.features(small.to_numpy())
