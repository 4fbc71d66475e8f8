"""Profiled ML and REML log-likelihoods of the kinship model in the eigenbasis of K.

Model: ``y = X β + g + e`` with ``g ~ N(0, σg² K)``, ``e ~ N(0, σe² I)``.  Writing
``s² = σg² + σe²`` and ``h² = σg² / s²``,

.. math:: \\mathrm{Cov}(y) = s^2 V(h^2), \\qquad V = h^2 K + (1 - h^2) I .

With ``K = U S U'`` (``U`` n × k) the inverse acts on two spaces: along the
stored eigenvectors ``V`` has eigenvalues ``d_i = h² s_i + 1 - h²``; on the
complement of ``U`` (only when ``k < n``) it is ``(1 - h²) I``.  For any two
matrices ``A``, ``B`` with ``n`` rows and their rotations ``Ã = U'A``, ``B̃ = U'B``:

.. math:: A' V^{-1} B = Ã' \\mathrm{diag}(w - w_0) B̃ + w_0 A'B,
          \\qquad w_i = 1/d_i,\\; w_0 = 1/(1 - h^2)\\ (0\\ \\text{if}\\ k = n),

and ``log|V| = Σ log d_i + (n - k) log(1 - h²)``.  So ``Ã``, ``B̃`` and the
small Gram matrix ``A'B`` are all a likelihood evaluation needs: ``O(k q²)`` for
``q`` columns, with no ``n × n`` solve.

Profiling ``β`` and ``s²`` out of the log-likelihood of ``Z = [X y]`` through
``M = Z'V⁻¹Z`` (blocks ``A = X'V⁻¹X``, ``b = X'V⁻¹y``, ``c = y'V⁻¹y``):

.. math::
    \\hat β = A^{-1} b, \\quad r = c - b'\\hat β, \\\\
    \\ell_{ML} = -\\tfrac12 [n \\log(2π r/n) + \\log|V| + n], \\\\
    \\ell_{REML} = -\\tfrac12 [(n-p) \\log(2π r/(n-p)) + \\log|V| + \\log|A| + (n-p)].

The REML form has no ``log|X'X|`` term (as in the reference implementation);
it shifts the log-likelihood by a constant and leaves ``h²`` unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from mixedmodels.genetics.decomposition import Decomposition, singular_at_one

__all__ = ["Profile", "RotatedData", "profile", "profiled_loglik", "spectral_weights"]

_LOG_2PI = float(np.log(2 * np.pi))


@dataclass(frozen=True)
class RotatedData:
    """Sufficient statistics of ``Z = [X y]`` for the likelihood at any ``h²``.

    Attributes
    ----------
    rot : ndarray, shape (k, p + 1)
        ``U' Z``.
    gram : ndarray, shape (p + 1, p + 1)
        ``Z' Z``; used only when the decomposition is low rank.
    S : ndarray, shape (k,)
        Eigenvalues of ``K``.
    n : int
        Number of individuals.
    """

    rot: np.ndarray
    gram: np.ndarray
    S: np.ndarray
    n: int

    @property
    def p(self) -> int:
        """Number of fixed-effect columns (``y`` is the last column of ``Z``)."""
        return self.rot.shape[1] - 1

    @property
    def singular(self) -> bool:
        """``V`` is singular at ``h² = 1`` (a zero eigenvalue, stored or in the complement)."""
        return singular_at_one(self.S, self.n)

    @classmethod
    def build(cls, decomposition: Decomposition, X: np.ndarray, y: np.ndarray) -> RotatedData:
        """Rotate ``Z = [X y]`` (X: n × p, y: n) by ``U'``."""
        Z = np.column_stack([X, y])
        return cls(decomposition.rotate(Z), Z.T @ Z, decomposition.S, decomposition.n)

    @classmethod
    def per_phenotype(
        cls, decomposition: Decomposition, X: np.ndarray, Y: np.ndarray
    ) -> list[RotatedData]:
        """One :class:`RotatedData` per column of ``Y`` (n × t), rotating ``[X Y]`` once."""
        return cls.build(decomposition, X, Y).split(X.shape[1])

    def split(self, p: int) -> list[RotatedData]:
        """For ``Z = [X Y]`` with ``p`` columns in ``X``: one ``[X y_j]`` per phenotype."""
        return [self.subset([*range(p), j]) for j in range(p, self.rot.shape[1])]

    def subset(self, columns: list[int]) -> RotatedData:
        """The statistics of a sub-design ``Z[:, columns]`` (the response must stay last)."""
        return RotatedData(
            self.rot[:, columns], self.gram[np.ix_(columns, columns)], self.S, self.n
        )

    def cross_products(self, h2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``Z' V⁻¹ Z`` at each ``h²`` (g,) → (g, q, q), and ``log|V|`` (g,)."""
        w, w0, logdet = spectral_weights(self.S, self.n, h2)
        return self.weighted_gram(w, w0), logdet

    def weighted_gram(self, w: np.ndarray, w0: np.ndarray) -> np.ndarray:
        """``Z' W Z`` (g, q, q) for ``W = U diag(w) U' + w0 (I - U U')``, w (g, k), w0 (g,)."""
        scaled = self.rot.T[None, :, :] * (w - w0[:, None])[:, None, :]
        return scaled @ self.rot + w0[:, None, None] * self.gram


def spectral_weights(
    S: np.ndarray, n: int, h2: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse eigenvalues of ``V = h² K + (1 - h²) I`` and ``log|V|``.

    Parameters
    ----------
    S : ndarray, shape (k,)
        Eigenvalues of ``K``; the other ``n - k`` are 0.
    n : int
    h2 : ndarray, shape (g,)

    Returns
    -------
    w : ndarray, shape (g, k)
        ``1 / (h² s_i + 1 - h²)``.
    w0 : ndarray, shape (g,)
        ``1 / (1 - h²)`` on the complement, 0 when ``k = n`` (there is none).
    logdet : ndarray, shape (g,)
        ``log|V|``.
    """
    h2 = np.atleast_1d(np.asarray(h2, dtype=np.float64))
    d = h2[:, None] * S[None, :] + (1.0 - h2)[:, None]
    n_rest = n - S.size
    with np.errstate(divide="ignore"):
        w0 = 1.0 / (1.0 - h2) if n_rest else np.zeros_like(h2)
        logdet = np.log(d).sum(axis=1) + (n_rest * np.log1p(-h2) if n_rest else 0.0)
    return 1.0 / d, w0, logdet


def derivative_weights(
    S: np.ndarray, n: int, h2: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights of ``V⁻¹ (dV/dh²) V⁻¹`` and ``d log|V| / dh²``, with ``dV/dh² = K - I``.

    Returns ``u`` (g, k) ``= (s_i - 1) / d_i²``, ``u0`` (g,) ``= -1 / (1 - h²)²`` on
    the complement (0 when ``k = n``) and ``Σ (s_i - 1)/d_i - (n - k)/(1 - h²)`` (g,).
    """
    h2 = np.atleast_1d(np.asarray(h2, dtype=np.float64))
    w, w0, _ = spectral_weights(S, n, h2)
    slope = S[None, :] - 1.0
    n_rest = n - S.size
    dlogdet = (slope * w).sum(axis=1) - n_rest * w0
    return slope * w**2, -(w0**2), dlogdet


class Profile(NamedTuple):
    """Profiled quantities at each ``h²`` of a grid of size g.

    ``loglik`` (g,), ``beta`` (g, p), ``rss`` (g,) ``= (y - Xβ)'V⁻¹(y - Xβ)``,
    ``s2`` (g,) the ML or REML estimate of ``s² = σg² + σe²``, and
    ``A_inv`` (g, p, p) ``= (X'V⁻¹X)⁻¹`` so that ``Cov(β̂) = s² A⁻¹``.
    """

    loglik: np.ndarray
    beta: np.ndarray
    rss: np.ndarray
    s2: np.ndarray
    A_inv: np.ndarray


def profile(M: np.ndarray, logdet_V: np.ndarray, n: int, reml: bool) -> Profile:
    """Profile ``β`` and ``s²`` out, given ``M = Z'V⁻¹Z`` (g, p+1, p+1) and ``log|V|`` (g,)."""
    p = M.shape[-1] - 1
    A, b, c = M[:, :p, :p], M[:, :p, p], M[:, p, p]
    A_inv = np.linalg.inv(A)
    beta = np.einsum("gij,gj->gi", A_inv, b)
    rss = c - np.einsum("gi,gi->g", b, beta)
    dof = n - p if reml else n
    s2 = rss / dof
    loglik = -0.5 * (dof * (_LOG_2PI + np.log(s2)) + logdet_V + dof)
    if reml:
        loglik -= 0.5 * np.linalg.slogdet(A)[1]
    return Profile(loglik, beta, rss, s2, A_inv)


def profiled_score(data: RotatedData, h2: np.ndarray, reml: bool) -> np.ndarray:
    r"""Derivative of the profiled log-likelihood with respect to ``h²`` (g,).

    With ``Ṽ = V⁻¹(K - I)V⁻¹``, ``N = Z'ṼZ`` and ``c = (-β̂, 1)`` (so ``Zc`` is the
    residual), the envelope theorem gives ``dr/dh² = -c'Nc`` and ``dA/dh² = -N_XX``:

    .. math::
        \frac{d\ell}{dh^2} = -\tfrac12 \left[ \nu \frac{dr/dh^2}{r}
            + \frac{d\log|V|}{dh^2} - [\mathrm{REML}]\, \mathrm{tr}(A^{-1} N_{XX}) \right],

    ``ν = n - p`` (REML) or ``n`` (ML).  Used to locate the maximum precisely:
    the log-likelihood itself is too flat there to pin ``h²`` beyond ``~1e-6``.
    """
    h2 = np.atleast_1d(np.asarray(h2, dtype=np.float64))
    M, _ = data.cross_products(h2)
    u, u0, dlogdet = derivative_weights(data.S, data.n, h2)
    N = data.weighted_gram(u, u0)
    p = data.p
    A_inv = np.linalg.inv(M[:, :p, :p])
    c = np.concatenate(
        [-np.einsum("gij,gj->gi", A_inv, M[:, :p, p]), np.ones((h2.size, 1))], axis=1
    )
    rss = np.einsum("gi,gij,gj->g", c, M, c)
    drss = -np.einsum("gi,gij,gj->g", c, N, c)
    dof = data.n - p if reml else data.n
    score = -0.5 * (dof * drss / rss + dlogdet)
    if reml:
        score += 0.5 * np.einsum("gij,gji->g", A_inv, N[:, :p, :p])
    return score


def profiled_loglik(data: RotatedData, h2: np.ndarray, reml: bool) -> Profile:
    """Profiled log-likelihood (and the rest of :class:`Profile`) at each ``h²``."""
    M, logdet = data.cross_products(np.atleast_1d(np.asarray(h2, dtype=np.float64)))
    return profile(M, logdet, data.n, reml)
