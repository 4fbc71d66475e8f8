"""Statistics every fitted model derives the same way from its objective and parameters."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["FitStatistics", "SINGULAR_TOL"]

SINGULAR_TOL = 1e-4
"""Diagonal θ elements below this are reported as on the boundary (lme4's isSingular default)."""


class FitStatistics:
    """log-likelihood, AIC, BIC, singularity and the fixed-effects Series.

    The host class provides ``objective`` (-2 log-likelihood, or the REML
    criterion), ``dof``, ``nobs``, ``beta``, ``coefnames`` and, for
    ``issingular``, ``theta`` and ``lowerbd``.
    """

    @property
    def loglikelihood(self) -> float:
        return -0.5 * self.objective

    @property
    def aic(self) -> float:
        return self.objective + 2 * self.dof

    @property
    def bic(self) -> float:
        return self.objective + self.dof * math.log(self.nobs)

    @property
    def issingular(self) -> bool:
        """True if some standard-deviation parameter of θ is on (within 1e-4 of) its bound 0."""
        theta = np.asarray(self.theta)
        return bool(np.any(np.abs(theta[np.asarray(self.lowerbd) == 0]) < SINGULAR_TOL))

    def boundary_parameters(self) -> list[str]:
        """Names of the standard-deviation elements of θ that are on (within 1e-4 of) 0."""
        theta, lower = np.asarray(self.theta), np.asarray(self.lowerbd)
        return [
            n
            for n, t, lb in zip(self.theta_names, theta, lower)
            if lb == 0 and abs(t) < SINGULAR_TOL
        ]

    def fixef(self) -> pd.Series:
        """Fixed-effects estimates by coefficient name."""
        return pd.Series(self.beta, index=self.coefnames, name="fixef")
