"""One entry point for SNP heritability, whatever the trait: ``heritability(y, X, K, family=...)``.

* ``family="gaussian"`` (default): (RE)ML in the linear kinship model
  (:func:`mixedmodels.genetics.heritability.heritability`).
* ``family="bernoulli"``: a 0/1 trait on the liability scale, by ``method``
  ``"ep"`` (default: expectation propagation for the probit model,
  :mod:`mixedmodels.genetics.ep`), ``"laplace"`` (the Laplace GLMM) or
  ``"threshold"`` (observed-scale REML transformed by the prevalence); ``"agq"``
  is refused with the reason (a kinship couples all random effects).
* ``family="poisson"``: counts with a log link and an observation-level
  overdispersion effect, by ``method`` ``"ep"`` (default:
  :mod:`mixedmodels.genetics.poisson_ep`) or ``"laplace"``.
* ``family="binomial"``: the Laplace GLMM (:mod:`.latent`).
"""

from __future__ import annotations

import numpy as np

from mixedmodels.errors import DataError
from mixedmodels.genetics.heritability import heritability as gaussian_heritability
from mixedmodels.genetics.latent import DEFAULT_METHOD, latent_heritability

__all__ = ["DEFAULT_METHOD", "heritability"]


def check_binary(y: object) -> None:
    """A 0/1 trait with at least one case and one control."""
    values = np.asarray(y, dtype=float)
    if values.ndim != 1 or not np.isin(values, (0.0, 1.0)).all():
        raise DataError("a bernoulli trait must be one column of 0/1 values (no NaN)")
    cases = int(values.sum())
    if cases == 0 or cases == values.size:
        raise DataError(
            f"the binary trait has {'no cases' if cases == 0 else 'no controls'} among its "
            f"{values.size} individuals: σg² is not identified"
        )


def heritability(
    y: object,
    X: object = None,
    K: object = None,
    *,
    family: str = "gaussian",
    method: str | None = None,
    prevalence: float | None = None,
    link: str | None = None,
    trials: object = None,
    **gaussian_options,
):
    """SNP heritability of a quantitative (REML) or binary/count trait (latent scale).

    Parameters
    ----------
    y, X, K
        As for :func:`mixedmodels.genetics.heritability.heritability`; for a
        non-Gaussian family ``K`` is the kinship matrix (array or labelled DataFrame).
    family : {"gaussian", "bernoulli", "binomial", "poisson"}
    method : str, optional
        Bernoulli: ``"ep"`` (default), ``"laplace"``, ``"threshold"``; Poisson: ``"ep"``
        (default), ``"laplace"``; binomial: ``"laplace"``.
    prevalence : float, optional
        Population prevalence for ``method="threshold"``.
    link, trials
        As for :func:`mixedmodels.genetics.latent_heritability`.
    **gaussian_options
        ``G``, ``reml``, ``grid_size``, ``assume_same_order`` of the Gaussian fit
        (``assume_same_order`` also pairs an unlabelled ``K`` with a labelled ``y``).

    Returns
    -------
    HeritabilityResult(s) for a Gaussian trait; LatentHeritability otherwise.
    """
    if family == "gaussian":
        if method not in (None, "reml", "ml"):
            raise DataError(f"a gaussian trait is fitted by REML or ML, not method={method!r}")
        if method is not None:
            gaussian_options["reml"] = method == "reml"
        return gaussian_heritability(y, X, K, **gaussian_options)
    if K is None:
        raise DataError(
            f"a {family} trait needs the kinship: heritability(y, K=K, family={family!r}) "
            "(the second positional argument is the covariate matrix X)"
        )
    if family == "bernoulli":
        check_binary(y)
    return latent_heritability(
        y, K, X, family=family, link=link, trials=trials, method=method,
        prevalence=prevalence,
        assume_same_order=gaussian_options.get("assume_same_order", False),
    )  # fmt: skip
