"""Simulation-based (quantile) residuals and their tests, after DHARMa (Hartig).

From S responses y⁽¹⁾…y⁽ˢ⁾ simulated from the fitted model (by default
unconditionally: fresh random effects each time, DHARMa's and lme4's
default), the scaled residual of observation i is where its observed value
falls in its simulated distribution,

    uᵢ ~ Uniform( #{s: yᵢ⁽ˢ⁾ < yᵢ} / S,  #{s: yᵢ⁽ˢ⁾ ≤ yᵢ} / S ),

a randomised probability integral transform: for continuous responses the
two bounds coincide; for counts and binomial successes the draw spreads
ties uniformly (DHARMa's ``integerResponse``).  Under a correctly specified
model the uᵢ are uniform on (0, 1) whatever the family, so one set of
tests reads them:

* :meth:`SimulatedResiduals.test_uniformity` — Kolmogorov–Smirnov against U(0, 1);
* :meth:`SimulatedResiduals.test_dispersion` — DHARMa's simulation test: the
  variance of the observed residuals yᵢ − μᵢ against its simulated
  distribution (μ the population-level mean when the simulations re-draw
  the random effects, the conditional mean when they condition on them);
* :meth:`SimulatedResiduals.test_zero_inflation` — the number of zeros
  against its simulated distribution;
* :meth:`SimulatedResiduals.test_outliers` — observations outside every
  simulation (u = 0 or 1) against Binomial(n, 2/(S + 1)).

The simulation tests are two-sided: p = 2 min(P(T* ≥ t), P(T* ≤ t)), capped
at 1, with T* the statistic's simulated values.  Residuals of one group
share the group's realised random effect, so they are not independent: the
tests' nominal levels hold only approximately (see ``docs/diagnostics.md``
for a calibration study).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import MixedModelsError
from ..model import MixedModel
from .simulation import random_generator

__all__ = ["simulate_residuals", "SimulatedResiduals", "TestResult"]

INTEGER_FAMILIES = ("bernoulli", "binomial", "poisson")

CHUNK = 25
"""Simulations per progress-bar step."""


class TestResult(pd.Series):
    """A test's ``statistic``, ``p_value`` (and its other numbers), printed as R prints a test."""

    __test__ = False  # not a pytest class

    @property
    def _constructor(self):
        return pd.Series

    def __repr__(self) -> str:
        lines = ["", f"\t{self.attrs.get('title', '')}", "", f"data:  {self.attrs.get('data', '')}"]
        lines.append(", ".join(f"{k} = {v:.5g}" for k, v in self.items()))
        lines.append(f"alternative hypothesis: {self.attrs.get('alternative', '')}")
        return "\n".join(lines) + "\n"

    __str__ = __repr__


def _test(title: str, alternative: str, **values: float) -> TestResult:
    out = TestResult(values, dtype=float)
    out.attrs.update(title=title, alternative=alternative, data="simulated residuals")
    return out


def _two_sided(observed: float, simulated: np.ndarray) -> float:
    return float(min(1.0, 2 * min(np.mean(simulated >= observed), np.mean(simulated <= observed))))


def _scaled(observed: np.ndarray, sims: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Randomised PIT of each observed value in its row of simulations."""
    below = np.mean(sims < observed[:, None], axis=1)
    upto = np.mean(sims <= observed[:, None], axis=1)
    return below + (upto - below) * rng.random(len(observed))


class SimulatedResiduals:
    """Scaled residuals from simulations of a fitted model, with DHARMa's tests and plot.

    Attributes
    ----------
    residuals : Series
        The scaled residuals uᵢ, indexed like the data.
    observed : ndarray, shape (n,)
        The response (binomial: successes, not proportions).
    simulated : ndarray, shape (n, S)
        The simulated responses on the same scale.
    expected : ndarray, shape (n,)
        μᵢ of the dispersion test (population-level or conditional mean, same scale).
    integer : bool
        Whether the response is a count (PIT randomised).
    """

    def __init__(self, residuals, observed, simulated, expected, integer, re_form):
        self.residuals, self.observed, self.simulated = residuals, observed, simulated
        self.expected, self.integer, self.re_form = expected, integer, re_form

    @property
    def nsim(self) -> int:
        return self.simulated.shape[1]

    def __repr__(self) -> str:
        q = np.quantile(self.residuals, [0, 0.25, 0.5, 0.75, 1])
        return (
            f"Simulated (quantile) residuals: {len(self.residuals)} observations, {self.nsim} simulations "
            f"({'random effects re-simulated' if self.re_form == '~0' else 'conditional on the fitted random effects'}"
            f"{', PIT randomised for integer responses' if self.integer else ''})\n"
            "quantiles: " + "  ".join(f"{v:.3f}" for v in q)
        )

    def test_uniformity(self) -> TestResult:
        """One-sample Kolmogorov–Smirnov test of the scaled residuals against U(0, 1)."""
        from scipy import stats

        res = stats.kstest(self.residuals.to_numpy(), "uniform")
        return _test(
            "Asymptotic one-sample Kolmogorov-Smirnov test",
            "two-sided",
            statistic=float(res.statistic),
            p_value=float(res.pvalue),
        )

    def test_dispersion(self) -> TestResult:
        """DHARMa's simulation test of dispersion: var(y − μ) against its simulated distribution.

        ``ratio`` > 1 is overdispersion (the observed residuals vary more than the model's).
        """
        observed = np.var(self.observed - self.expected, ddof=1)
        simulated = np.var(self.simulated - self.expected[:, None], axis=0, ddof=1)
        return _test(
            "DHARMa nonparametric dispersion test via sd of residuals fitted vs. simulated",
            "two.sided",
            dispersion=float(observed / np.mean(simulated)),
            p_value=_two_sided(observed, simulated),
        )

    def test_zero_inflation(self) -> TestResult:
        """The number of zeros against its simulated distribution (``ratio`` > 1: more zeros than expected)."""
        observed = float(np.sum(self.observed == 0))
        simulated = np.sum(self.simulated == 0, axis=0).astype(float)
        mean = float(np.mean(simulated))
        return _test(
            "DHARMa zero-inflation test via comparison to expected zeros with simulation under H0 = fitted model",
            "two.sided",
            ratio=observed / mean if mean > 0 else np.inf if observed > 0 else np.nan,
            p_value=_two_sided(observed, simulated),
        )

    def test_outliers(self) -> TestResult:
        """Exact binomial test of the number of observations outside all simulations (u = 0 or 1)."""
        from scipy import stats

        u = self.residuals.to_numpy()
        outliers = int(np.sum((u == 0) | (u == 1)))
        expected = 2.0 / (self.nsim + 1)
        res = stats.binomtest(outliers, len(u), expected)
        return _test(
            "DHARMa outlier test based on exact binomial test",
            "true probability of success is not equal to " + f"{expected:.5g}",
            outliers=float(outliers),
            frequency=outliers / len(u),
            p_value=float(res.pvalue),
        )

    def plot(self) -> Any:
        """DHARMa's two panels: a uniform QQ plot with the KS test, and residuals against ranked predictions."""
        from ..plots import _figure

        fig, (ax1, ax2) = _figure(2, 2, size=(4.2, 3.8))
        u = np.sort(self.residuals.to_numpy())
        n = len(u)
        ax1.plot((np.arange(1, n + 1) - 0.5) / n, u, ".", markersize=3)
        ax1.plot([0, 1], [0, 1], color="red", lw=1)
        ks = self.test_uniformity()
        ax1.set(xlabel="expected", ylabel="observed", title=f"QQ plot (KS p = {ks['p_value']:.3g})")
        rank = pd.Series(self.expected).rank(method="average").to_numpy() / n
        ax2.plot(rank, self.residuals.to_numpy(), ".", markersize=3)
        for q in (0.25, 0.5, 0.75):
            ax2.axhline(q, color="grey", lw=0.8, ls="--")
        ax2.set(
            xlabel="model predictions (rank transformed)", ylabel="scaled residual", ylim=(0, 1)
        )
        ax2.set_title("Residuals vs. predicted")
        return fig


def _check(model: Any, n: Any) -> None:
    if not isinstance(model, MixedModel) or not callable(getattr(model, "simulate", None)):
        raise MixedModelsError(
            f"simulated residuals need a fitted mixed model with a simulate() method, got {type(model).__name__}"
        )
    model.require_fit("simulated residuals")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise MixedModelsError(
            f"n (the number of simulations) must be an integer of at least 2, got {n!r}"
        )


def _simulations(model: MixedModel, n: int, rng, re_form, progress) -> np.ndarray:
    from ..progress import progress_bar

    parts = []
    with progress_bar(progress=progress, total=n, desc="simulations", unit=" sim") as bar:
        for start in range(0, n, CHUNK):
            k = min(CHUNK, n - start)
            parts.append(model.simulate(k, seed=rng, re_form=re_form).to_numpy())
            bar.update(k)
    return np.hstack(parts)


def _expected(model: MixedModel, re_form) -> np.ndarray:
    """The mean the dispersion test subtracts, on the response scale."""
    eta = np.asarray(model.predict(re_form=re_form), dtype=float)
    return eta if model.family is None else model.family.link.linkinv(eta)


def simulate_residuals(
    model: MixedModel,
    n: int = 250,
    seed: Any = None,
    *,
    re_form: Any = "~0",
    progress: bool | str = "auto",
) -> SimulatedResiduals:
    """DHARMa's scaled residuals of a fitted model from ``n`` simulated responses.

    Parameters
    ----------
    model : MixedModel
        A fitted model whose family can be simulated.
    n : int
        Number of simulations (at least 2; DHARMa's default is 250).
    seed : int, SeedSequence or Generator, optional
        Makes the simulations and the PIT randomisation reproducible.
    re_form : "~0" or None
        ``"~0"`` (default) re-simulates the random effects; ``None``
        conditions on the fitted ones (see :func:`mixedmodels.inference.simulation.simulate`).
    progress : bool or "auto"
        Progress bar (see :mod:`mixedmodels.progress`).
    """
    _check(model, n)
    rng = random_generator(seed)
    sims = _simulations(model, int(n), rng, re_form, progress)
    observed, expected = model.response.astype(float), _expected(model, re_form)
    family = model.family
    integer = family is not None and family.name in INTEGER_FAMILIES
    if family is not None and family.name == "binomial":  # successes, not proportions
        trials = np.rint(model.prior_weights)
        observed, sims, expected = (
            observed * trials,
            np.rint(sims * trials[:, None]),
            expected * trials,
        )
        observed = np.rint(observed)
    u = model.per_observation(_scaled(observed, sims, rng), "scaled_residual")
    return SimulatedResiduals(u, observed, sims, expected, integer, re_form)
