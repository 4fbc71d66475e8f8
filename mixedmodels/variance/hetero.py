"""Linear mixed models whose residual variance depends on covariates.

    y = Xβ + Zb + ε,   b ~ N(0, ΛΛ'),   ε_i ~ N(0, σ_i²),   log σ_i² = d_i'γ  (÷ w_i with weights)

The mean is an lme4-style formula; the residual variance is log-linear in
the columns of a second, one-sided formula (``dispformula="~ 1 + Days"``),
as glmmTMB's ``dispformula``.  Each random-effects term's covariance is
parametrised by its lower-triangular Cholesky factor on the scale of y
(not relative to a residual σ, which no longer exists).  Without a
random-effects term this is the heteroskedastic linear model (hlmm's HLM).

Fitting is by maximum likelihood with the O(n q²) Woodbury evaluation of
:mod:`.woodbury` (q = total number of random effects), so it suits models
with up to a few hundred random effects.

Scale of the variance part
--------------------------
``disp_coef`` are the coefficients γ of the log residual *variance*,
σ_i² = exp(d_i'γ): hlmm's parametrisation, and the scale of the glmmTMB
reference results' ``disp_coef`` (whose label says log sd; see
docs/variance.md).  ``disp_coef_logsd`` = γ / 2 are the coefficients of
the log residual standard deviation.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..design import model_matrix
from ..errors import DataError, FormulaError, MixedModelsError
from ..feterm import FeTerm
from ..formula import parse_formula
from ..inference.mixin import InferenceMixin
from ..lmm import LinearMixedModel, numeric_response
from ..model import MixedModel
from ..modelframe import check_dataframe, used_columns
from ..optsummary import OptSummary
from ..remat import ReMat
from ..results import coef_table, ranef_frames, split_b
from ..structure import build_structure, lme4_blocks
from ..varcorr import term_covariances, varcorr_frame, varcorr_long
from .gaussfit import GaussianFit, fit_gaussian
from .lambdapattern import LambdaPattern
from .monitor import EvaluationMonitor
from .woodbury import HeteroskedasticGaussian

__all__ = ["HeteroskedasticMixedModel", "dispersion_rhs"]


def dispersion_rhs(dispformula: str) -> str:
    """The right-hand side of a one-sided dispersion formula (``"~ 1 + z"`` → ``"1 + z"``)."""
    if not isinstance(dispformula, str) or not dispformula.strip().startswith("~"):
        raise FormulaError(
            f"dispformula must be a one-sided formula such as '~ 1 + z', got {dispformula!r}"
        )
    try:
        parsed = parse_formula(f"dispersion {dispformula.strip()}")
    except FormulaError as exc:
        raise FormulaError(f"dispformula {dispformula!r}: {exc}") from None
    if parsed.random or parsed.offsets:
        raise FormulaError(
            f"dispformula {dispformula!r} may contain only fixed terms (no random-effects terms or offsets)"
        )
    return parsed.fixed


def _complete_dispersion_rows(data: pd.DataFrame, rhs: str) -> pd.DataFrame:
    """Rows of ``data`` without missing values in the dispersion formula's columns (index kept).

    The mean formula's columns are screened afterwards by :func:`build_structure`.
    """
    cols = used_columns([rhs], data)
    complete = data[cols].notna().all(axis=1).to_numpy()
    if not complete.all():
        warnings.warn(
            f"{int((~complete).sum())} row(s) with missing values in the dispersion formula's "
            "columns were dropped",
            stacklevel=4,
        )
    return data.loc[complete]


def remat_pattern(reterms: list[ReMat]) -> LambdaPattern:
    """Λ = blockdiag_i(I_{L_i} ⊗ λ_i) with each λ_i's lower triangle (θ) at its L_i positions."""
    rows, cols, lower, names, offset = [], [], [], [], 0
    for r in reterms:
        levels = offset + np.arange(r.nlevels) * r.k
        for a, b in r.positions():
            rows.append(levels + a)
            cols.append(levels + b)
        lower.append(r.lowerbd())
        names.extend(r.theta_names())
        offset += r.q
    return LambdaPattern(
        offset,
        tuple(rows),
        tuple(cols),
        np.concatenate(lower) if lower else np.zeros(0),
        tuple(names),
    )


class HeteroskedasticMixedModel(InferenceMixin, MixedModel):
    """A linear (mixed) model with a log-linear model for the residual variance.

    Parameters
    ----------
    formula : str
        lme4-style mean formula, e.g. ``"Reaction ~ 1 + Days + (1 | Subject)"``;
        random-effects terms are optional.
    data : DataFrame
        Not modified; rows with missing values in used columns are dropped.
    dispformula : str
        One-sided formula for the log residual variance, e.g. ``"~ 1 + Days"``.
    weights : str or array, optional
        Prior weights: Var(ε_i) = exp(d_i'γ) / w_i.
    contrasts : dict, optional
        Column → contrasts, used by both formulas.

    Examples
    --------
    >>> import mixedmodels as mm
    >>> from mixedmodels.variance import HeteroskedasticMixedModel
    >>> m = HeteroskedasticMixedModel("Reaction ~ 1 + Days + (1 | Subject)",
    ...     mm.datasets.load("sleepstudy"), dispformula="~ 1 + Days").fit()
    >>> round(m.objective, 4)
    1783.8238
    """

    def __init__(
        self,
        formula: str,
        data: pd.DataFrame,
        *,
        dispformula: str,
        weights: Any = None,
        contrasts: Mapping[str, Any] | None = None,
    ):
        self.dispformula = dispformula
        self.record_call(
            formula, data, dispformula=dispformula, weights=weights, contrasts=contrasts
        )
        rhs = dispersion_rhs(dispformula)
        data = _complete_dispersion_rows(check_dataframe(data), rhs)
        self.structure = build_structure(
            formula, data, weights=weights, contrasts=contrasts, require_random=False
        )
        self.formula = self.structure.formula.text
        self.obs_index = data.index.take(self.structure.frame.rows)
        used = data.iloc[self.structure.frame.rows].reset_index(drop=True)
        self.disp = FeTerm(model_matrix(rhs, used, contrasts, what="dispersion formula"))
        self._fit: GaussianFit | None = None
        self.lik = self._likelihood(
            numeric_response(self.structure.response, self.structure.formula.response)
        )
        self.optsum = OptSummary(np.zeros(len(self.lik.lower)), self.lik.lower, optimizer="newton")

    def _likelihood(self, y: np.ndarray) -> HeteroskedasticGaussian:
        s = self.structure
        if s.offset is not None:
            y = y - s.offset
        Z = sp.hstack([r.Z() for r in s.reterms], format="csr") if s.reterms else None
        return HeteroskedasticGaussian(
            y, s.fe.X, self.disp.X, Z, remat_pattern(s.reterms), s.weights
        )

    # ---- fitting ----------------------------------------------------------------------------
    def fit(self, verbose: bool = False, progress: bool = False) -> HeteroskedasticMixedModel:
        """Maximum-likelihood estimates by Newton's method with the exact gradient and Hessian.

        The start is the ordinary (homoskedastic) ML fit of :class:`~mixedmodels.LinearMixedModel`.

        Parameters
        ----------
        verbose : bool
            Print the objective at each evaluation.
        progress : bool
            Show a progress bar of evaluations.
        """
        monitor = EvaluationMonitor("heteroskedastic LMM fit", verbose, progress)
        try:
            self._fit = fit_gaussian(self.lik, self._homoskedastic_start(), monitor=monitor)
        finally:
            monitor.close()
        if not self._fit.converged:
            warnings.warn(
                "the optimiser stopped before the gradient vanished; estimates may be inaccurate",
                stacklevel=2,
            )
        self._set_lambdas()
        self._record()
        return self

    def _record(self) -> None:
        """The Newton fit in the model's OptSummary, as every fit is recorded."""
        fit = self._fit
        o = self.optsum
        o.final, o.fmin, o.feval = fit.phi.copy(), float(fit.objective), int(fit.nfev)
        o.returnvalue = "SUCCESS" if fit.converged else "MAXEVAL_REACHED"
        o.fitted = True

    def refit(self, y: np.ndarray | None = None, **kwargs) -> HeteroskedasticMixedModel:
        """Fit again, optionally to a new response (same rows, offset included)."""
        if y is not None:
            y = np.asarray(y, dtype=float)
            if y.shape != (self.nobs,) or not np.isfinite(y).all():
                raise DataError(
                    f"the new response must be {self.nobs} finite values, got shape {y.shape}"
                )
            self.lik = self._likelihood(y)
        return self.fit(**kwargs)

    def objective_at(self, theta, *, beta=None, sigma=None) -> float:
        raise MixedModelsError(
            "a heteroskedastic model's objective is a function of (γ, θ) on the response scale: use "
            "model.lik.evaluate(phi)"
        )

    def apply_optsum(self, saved) -> None:
        raise MixedModelsError(
            "restoring a saved optimisation is not available for heteroskedastic models"
        )

    def set_theta(self, theta: np.ndarray) -> HeteroskedasticMixedModel:
        raise MixedModelsError(
            "θ of a heteroskedastic model is estimated jointly with γ; it cannot be set"
        )

    @property
    def lowerbd(self) -> np.ndarray:
        return self.lik.lower[len(self.disp.coefnames) :]

    @property
    def sigma(self) -> None:
        """None: the residual standard deviation varies by observation (see :meth:`residual_sd`)."""
        return None

    @property
    def has_sigma(self) -> bool:
        return True

    def _homoskedastic_start(self) -> np.ndarray | None:
        """φ from the ordinary ML fit with a constant residual variance σ².

        γ from log σ², θ = σ times lme4's relative θ.

        Newton's method from lme4's crude start (relative factors I) can
        overshoot onto the bound of a standard deviation, where a Cholesky
        parametrisation has spurious stationary points; the homoskedastic
        optimum, found by BOBYQA, is close to the heteroskedastic one.
        """
        if not self.reterms:
            return None
        lmm = LinearMixedModel.from_structure(self.structure, self.response)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lmm.fit()
        theta = lmm.sigma * np.concatenate([r.get_theta() for r in self.reterms])
        # A singular homoskedastic fit would start Newton on a bound, possibly at a saddle.
        diagonal = self.lik.pattern.is_diagonal()
        theta[diagonal] = np.maximum(theta[diagonal], 0.01 * lmm.sigma)
        gamma, *_ = np.linalg.lstsq(
            self.lik.D, np.full(self.nobs, 2.0 * np.log(lmm.sigma)), rcond=None
        )
        return np.concatenate([gamma, theta])

    def _set_lambdas(self) -> None:
        """Write the estimated Cholesky factors into the terms (for varcorr and ranef)."""
        start = 0
        for r in self.reterms:
            r.set_theta(self.theta[start : start + r.ntheta])
            start += r.ntheta

    def _require_fit(self) -> GaussianFit:
        if self._fit is None:
            self.require_fit()
        return self._fit

    @property
    def fitted_model(self) -> GaussianFit:
        """The estimates and their covariance (:class:`.gaussfit.GaussianFit`)."""
        return self._require_fit()

    # ---- sizes and fit statistics ----------------------------------------------------------------
    @property
    def dof(self) -> int:
        """Number of estimated parameters: β, γ and the covariance-factor elements."""
        return len(self.beta) + len(self.disp_coef) + len(self.theta)

    @property
    def objective(self) -> float:
        """-2 log-likelihood at the estimates."""
        return self.fitted_model.objective

    @property
    def converged(self) -> bool:
        return self.fitted_model.converged

    # ---- mean part -----------------------------------------------------------------------------
    @property
    def beta(self) -> np.ndarray:
        """Coefficients of the mean (aliased columns dropped)."""
        return self.fitted_model.beta

    @property
    def vcov(self) -> np.ndarray:
        """Covariance of β̂ from the observed information of all parameters."""
        p = len(self.beta)
        return self.fitted_model.vcov[:p, :p]

    def coeftable(self, ddf: str | None = None, component: str = "cond") -> pd.DataFrame:
        """Mean coefficients: estimates, standard errors, z and two-sided p-values."""
        self.check_component(component)
        if ddf is not None:
            raise MixedModelsError(
                "denominator degrees of freedom are not available for heteroskedastic models"
            )
        return coef_table(self.beta, self.stderror, self.coefnames)

    # ---- variance part ----------------------------------------------------------------------------
    disp_scale = "log residual variance"

    @property
    def disp_coef(self) -> np.ndarray:
        """γ: coefficients of log σ_i² (glmmTMB's reported scale; see the module docstring)."""
        return self.fitted_model.gamma

    @property
    def disp_coef_logsd(self) -> np.ndarray:
        """γ / 2: coefficients of log σ_i."""
        return self.disp_coef / 2.0

    @property
    def disp_names(self) -> list[str]:
        return self.disp.coefnames

    @property
    def disp_stderror(self) -> np.ndarray:
        """Standard errors of γ (halve them for the log-sd scale)."""
        p, d = len(self.beta), len(self.disp_coef)
        return self.fitted_model.stderror[p : p + d]

    def disp_coeftable(self, scale: str = "logvar") -> pd.DataFrame:
        """Variance coefficients on the log-variance (``"logvar"``) or log-sd (``"logsd"``) scale."""
        if scale not in ("logvar", "logsd"):
            raise MixedModelsError(f"scale must be 'logvar' or 'logsd', got {scale!r}")
        factor = 1.0 if scale == "logvar" else 0.5
        return coef_table(factor * self.disp_coef, factor * self.disp_stderror, self.disp_names)

    def extra_parameters(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """γ, the log residual-variance coefficients, named ``disp~<column>`` (profiled as β is)."""
        return [f"disp~{n}" for n in self.disp_names], self.disp_coef.copy(), self.disp_stderror

    def objective_at_extra(self, theta: np.ndarray, beta: np.ndarray, extra: np.ndarray) -> float:
        """-2 log L at (θ on the response scale, β, γ), nothing profiled; the fit is unchanged."""
        theta, beta, extra = (np.asarray(a, dtype=float) for a in (theta, beta, extra))
        if theta.shape != self.theta.shape or extra.shape != self.disp_coef.shape:
            raise MixedModelsError(
                f"expected {len(self.theta)} θ and {len(self.disp_coef)} γ values, "
                f"got {theta.size} and {extra.size}"
            )
        if np.any(theta < self.lowerbd):
            raise MixedModelsError("θ is below its lower bounds")
        return float(self.lik.evaluate(np.concatenate([extra, theta]), beta).objective)

    def residual_sd(self) -> np.ndarray:
        """σ_i: the residual standard deviation of each observation."""
        return np.sqrt(self.lik.residual_variance(self.disp_coef))

    # ---- random effects ---------------------------------------------------------------------------
    @property
    def theta(self) -> np.ndarray:
        """Elements of the random-effect terms' Cholesky factors, on the scale of y."""
        return self.fitted_model.theta

    @property
    def theta_names(self) -> list[str]:
        return list(self.lik.pattern.names)

    def varcorr(self, form: str = "wide") -> pd.DataFrame:
        """Random-effect variances, standard deviations and correlations (no residual row).

        The residual variance varies by observation: see :meth:`disp_coeftable`.
        """
        self._require_fit()
        terms = term_covariances(self.reterms, lme4_blocks(self.reterms), 1.0)
        return varcorr_long(terms, None) if form == "long" else varcorr_frame(terms, None)

    def _u(self) -> np.ndarray:
        """Spherical random effects u = Λ'Z'V⁻¹(y - Xβ̂), so that E[b | y] = Λu."""
        wb = self.lik.woodbury(self.fitted_model.phi)
        a = wb.P(self.lik.y - self.lik.X @ self.beta)
        return wb.Lam.T @ (self.lik.Z.T @ a)

    def _b(self) -> np.ndarray:
        """E[b | y] for all terms stacked (length q)."""
        return self.lik.pattern.Lambda(self.theta) @ self._u()

    def ranef(self, condvar: bool = False) -> dict[str, pd.DataFrame]:
        """Conditional means E[b | y] per grouping factor (levels x columns).

        With ``condvar=True``, columns ``condvar(<name>)`` hold Var(b | y, β̂),
        the diagonal of N = Λ(I + Λ'Z'R⁻¹ZΛ)⁻¹Λ'.
        """
        if not self.reterms:
            raise MixedModelsError("the model has no random-effects terms")
        cv = self._condvar() if condvar else None
        return ranef_frames(self.reterms, split_b(self.reterms, self._u()), cv, "wide")

    def _condvar(self) -> list[np.ndarray]:
        N = self.lik.woodbury(self.fitted_model.phi).N
        out, start = [], 0
        for r in self.reterms:
            idx = start + np.arange(r.q).reshape(r.nlevels, r.k)
            out.append(N[idx[:, :, None], idx[:, None, :]])
            start += r.q
        return out

    def b(self) -> list[np.ndarray]:
        """E[b | y] per term (block order), shape (nlevels, k)."""
        return split_b(self.reterms, self._u()) if self.reterms else []

    def _fitted_values(self) -> np.ndarray:
        out = self.lik.X @ self.beta
        if self.reterms:
            out = out + self.lik.Z @ self._b()
        return out if self.structure.offset is None else out + self.structure.offset

    def fitted(self) -> pd.Series:
        """Xβ̂ + Zb̂ (+ offset), indexed like the data."""
        self._require_fit()
        return self.per_observation(self._fitted_values(), "fitted")

    @property
    def response(self) -> np.ndarray:
        """y as given (the likelihood works with y - offset)."""
        return self.lik.y if self.structure.offset is None else self.lik.y + self.structure.offset

    def residuals(self, kind: str | None = None, *, type: str | None = None) -> pd.Series:
        """y - ŷ (``"response"``) or scaled by each observation's σᵢ (``"pearson"``), indexed like the data."""
        kind = self.residual_kind(kind, type, "response", ("response", "pearson"))
        self._require_fit()
        r = self.response - self._fitted_values()
        if kind == "pearson":
            r = r / self.residual_sd()
        return self.per_observation(r, "residuals")

    def __str__(self) -> str:
        from .summary import hetero_summary

        return hetero_summary(self)
