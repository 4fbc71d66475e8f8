"""Statistics every fitted model derives the same way from its objective and parameters."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .thetalayout import has_structures, structured_boundary

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
        """True if a standard deviation of θ is on (within 1e-4 of) 0, or a structure's |ρ| at 1."""
        theta = np.asarray(self.theta)
        at_zero = np.any(np.abs(theta[np.asarray(self.lowerbd) == 0]) < SINGULAR_TOL)
        return bool(at_zero or np.any(self._correlation_boundary(theta)))

    def boundary_parameters(self) -> list[str]:
        """Names of the θ elements on the boundary: standard deviations at 0, structures' |ρ| at 1."""
        theta, lower = np.asarray(self.theta), np.asarray(self.lowerbd)
        corr = self._correlation_boundary(theta)
        return [
            n
            for n, t, lb, c in zip(self.theta_names, theta, lower, corr)
            if (lb == 0 and abs(t) < SINGULAR_TOL) or c
        ]

    def boundary_text(self) -> str:
        """The boundary parameters as a warning says it: ``g.(Intercept) at 0``, ``g.phi_rho at |ρ| = 1``."""
        theta = np.asarray(self.theta)
        corr = dict(zip(self.theta_names, self._correlation_boundary(theta)))
        at_zero = [n for n in self.boundary_parameters() if not corr.get(n)]
        at_one = [n for n in self.boundary_parameters() if corr.get(n)]
        parts = ([f"{', '.join(at_zero)} at 0"] if at_zero else []) + (
            [f"{', '.join(at_one)} at its limit (correlation ±1)"] if at_one else []
        )
        return "; ".join(parts)

    def _correlation_boundary(self, theta: np.ndarray) -> np.ndarray:
        """Per θ element: a covariance structure's correlation at its limit (see covstruct)."""
        reterms = self.structure.reterms
        if not has_structures(reterms) or len(theta) != sum(r.ntheta for r in reterms):
            return np.zeros(len(theta), bool)
        return structured_boundary(reterms, self.structure.theta_perm, theta)

    def fixef(self) -> pd.Series:
        """Fixed-effects estimates by coefficient name."""
        return pd.Series(self.beta, index=self.coefnames, name="fixef")
