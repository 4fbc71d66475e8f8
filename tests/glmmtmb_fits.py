"""glmmTMB's reference fits (tests/data/glmmtmb_reference.json, tools/make_glmmtmb_reference.R)
and the same models fitted here once per test session."""

from __future__ import annotations

from functools import cache

import numpy as np
from reference_data import load_json

import mixedmodels as mm


def reference(name: str) -> dict:
    return load_json("data/glmmtmb_reference.json")[name]


def ziformula(ref: dict) -> str | None:
    return None if ref.get("ziformula", "~0") == "~0" else ref["ziformula"]


@cache
def fitted(name: str):
    """The model of reference ``name`` fitted with the package (cached)."""
    ref = reference(name)
    family = ref.get("family", "nbinom2")
    model = mm.GeneralizedLinearMixedModel(
        ref["formula"], mm.datasets.load(ref["data"]), family=family, ziformula=ziformula(ref)
    )
    return model.fit()


def as_array(values) -> np.ndarray:
    return np.atleast_1d(np.asarray(values, dtype=float))


def check_against_glmmtmb(name: str, se: bool = True) -> None:
    """The agreement targets: −2 log L 1e-6 relative, β within 2% of a SE, θ 1e-2,
    dispersion 1e-3 relative, SE 2% (β and zero inflation)."""
    ref, m = reference(name), fitted(name)
    np.testing.assert_allclose(m.objective, ref["objective"], rtol=1e-6)
    beta_se = as_array(ref["se"])
    assert np.all(np.abs(m.beta - as_array(ref["beta"])) <= 0.02 * beta_se)
    np.testing.assert_allclose(m.theta, as_array(ref["sd"]), atol=1e-2)
    assert m.coefnames == list(np.atleast_1d(ref["coefnames"]))
    if m.n_dispersion:
        np.testing.assert_allclose(m.dispersion, ref["sigma"], rtol=1e-3)
    if ziformula(ref):
        zi = m.coeftable(component="zi")
        zi_se = as_array(ref["zi_se"])
        assert np.all(np.abs(zi.iloc[:, 0].to_numpy() - as_array(ref["zi_beta"])) <= 0.02 * zi_se)
        if se:
            np.testing.assert_allclose(zi.iloc[:, 1].to_numpy(), zi_se, rtol=0.02)
    if se:
        np.testing.assert_allclose(m.stderror, beta_se, rtol=0.02)
        named = dict(zip(ref["se_par_names"], ref["se_par"]))
        if m.n_dispersion:
            disp = m.coeftable(component="disp")
            np.testing.assert_allclose(disp.iloc[0, 1], named["d~(Intercept)"], rtol=0.02)
        # θ's: glmmTMB's is log sd, whose SE is se(sd)/sd
        theta_se = np.sqrt(m.parameter_vcov[0, 0]) / m.theta[0]
        key = next(k for k in named if k.startswith("theta_1|"))
        np.testing.assert_allclose(theta_se, named[key], rtol=0.02)
