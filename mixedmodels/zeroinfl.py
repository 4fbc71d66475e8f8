"""Zero inflation: a mixture of structural zeros and a count distribution.

    P(y = 0) = p + (1 − p) f(0 | η),   P(y = k) = (1 − p) f(k | η)  (k > 0),
    logit p = X_zi β_zi,

with f the count family (Poisson or negative binomial) and the
zero-inflation probability p its own fixed-effects model (glmmTMB's
``ziformula``; random effects there are not supported).  For a zero, with
ρ = (1 − p) f(0) / P(y = 0) the posterior probability that the zero came
from the count part,

    ∂ℓ/∂η = ρ ℓ_f',   ∂²ℓ/∂η² = ρ ℓ_f'' + ρ(1 − ρ) ℓ_f'²,

and for y > 0 the count family's own derivatives (ℓ_f = log f).  In the
zero-inflation predictor z = η_zi (p = logistic z, and 1 − ρ = logistic(z − ℓ_f)
for a zero, ρ = 1 otherwise),

    ∂ℓ/∂z = (1 − ρ) − p,   ∂²ℓ/∂z² = ρ(1 − ρ) − p(1 − p),   ∂²ℓ/∂η∂z = −ρ(1 − ρ) ℓ_f',

which put β_zi beside β in the Newton iteration of the fast stage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from .design import Design, model_matrix
from .errors import DataError, FormulaError
from .formula import parse_formula

__all__ = [
    "ZeroInflation",
    "zero_inflation",
    "zi_logpdf",
    "zi_eta_derivatives",
    "zi_nuisance_derivatives",
]


@dataclass
class ZeroInflation:
    """The zero-inflation model: its formula and design on the rows the count model uses."""

    formula: str
    design: Design

    @property
    def X(self) -> np.ndarray:
        return self.design.matrix

    @property
    def coefnames(self) -> list[str]:
        return list(self.design.names)

    def X_on(self, data: pd.DataFrame) -> np.ndarray:
        """The zero-inflation design on new rows (DataError naming the formula if it cannot be built)."""
        try:
            return self.design.on(data)
        except Exception as exc:  # noqa: BLE001 - formulaic raises many types; report in the user's terms
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(
                f"the zero-inflation formula {self.formula!r} cannot be evaluated on the new data: {first}"
            ) from None


def zero_inflation(
    ziformula: str, rows: pd.DataFrame, y: np.ndarray, contrasts=None
) -> ZeroInflation:
    """The :class:`ZeroInflation` of ``ziformula`` (``"~ 1"``, ``"~ spp"``) on ``rows``.

    Raises a FormulaError for random effects in the formula or an unknown
    column, and a DataError when the response has no zeros to inflate.
    """
    if not isinstance(ziformula, str):
        raise FormulaError(
            f"ziformula must be a one-sided formula string such as '~ 1', got {ziformula!r}"
        )
    text = ziformula.strip()
    rhs = text[1:].strip() if text.startswith("~") else text
    if "|" in rhs:
        raise FormulaError(
            f"ziformula {ziformula!r}: random effects in the zero-inflation model are not supported; "
            "use fixed effects only (e.g. '~ 1' or '~ spp')"
        )
    parse_formula(f"y ~ {rhs}")  # the package's own syntax check
    if not np.any(y == 0):
        raise DataError(
            f"ziformula {ziformula!r}: the response has no zeros, so there is nothing to inflate; "
            "drop ziformula"
        )
    design = model_matrix(rhs, rows, contrasts, what="zero-inflation formula")
    return ZeroInflation(ziformula, design)


def _log_weights(eta_zi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log p and log(1 − p) = log p − η_zi for p = logistic(η_zi), accurate for any η_zi."""
    lp = special.log_expit(eta_zi)
    return lp, lp - eta_zi


def zi_logpdf(family, y, eta, eta_zi, dispersion=None) -> np.ndarray:
    """log P(yᵢ) of the zero-inflated distribution per observation."""
    lp, lq = _log_weights(eta_zi)
    count = lq + family.logpdf(y, eta, dispersion)
    return np.where(y == 0, np.logaddexp(lp, count), count)


def zi_eta_derivatives(family, y, eta, eta_zi, dispersion=None) -> tuple[np.ndarray, np.ndarray]:
    """(∂ℓ/∂η, ∂²ℓ/∂η²) in the count part's linear predictor (see the module docstring)."""
    lp, lq = _log_weights(eta_zi)
    lf = family.logpdf(y, eta, dispersion)
    d1, d2 = family.eta_derivatives(y, eta, dispersion)
    rho = _count_share(y, lp, lq, lf)
    return rho * d1, rho * d2 + rho * (1.0 - rho) * d1 * d1


def _count_share(y, lp, lq, lf) -> np.ndarray:
    """ρ: the posterior probability that a zero came from the count part (1 for y > 0)."""
    return np.where(y == 0, np.exp(lq + lf - np.logaddexp(lp, lq + lf)), 1.0)


def zi_nuisance_derivatives(
    family, y, eta, eta_zi, dispersion=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(∂ℓ/∂z, ∂²ℓ/∂z², ∂²ℓ/∂η∂z) in the zero-inflation predictor z = η_zi (module docstring).

    All arrays of shape (n,), per observation and unweighted.
    """
    lp, lq = _log_weights(eta_zi)
    lf = family.logpdf(y, eta, dispersion)
    d1, _ = family.eta_derivatives(y, eta, dispersion)
    rho = _count_share(y, lp, lq, lf)
    p = special.expit(eta_zi)
    both = rho * (1.0 - rho)
    return (1.0 - rho) - p, both - p * (1.0 - p), -both * d1


def zi_probability(eta_zi: np.ndarray) -> np.ndarray:
    """p = logistic(η_zi)."""
    return special.expit(eta_zi)
