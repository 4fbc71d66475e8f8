"""Bringing a block of SNPs to a basis where ``V⁻¹`` is diagonal: the scan's dominant cost.

Every per-SNP statistic needs ``C'V⁻¹C``, ``C'V⁻¹X`` and ``C'V⁻¹y``.  Two
ways to get them from one matrix product per block:

* :class:`Rotation` by ``U'`` (``K = U S U'``): ``V⁻¹ = U diag(w) U'`` in any
  ``h²``, so one rotated block serves every phenotype, and a low-rank ``U``
  (``n × k``) costs ``2 n k`` flops per column.  This is FaST-LMM's way.
* :class:`Whitening` by ``L'`` with ``V⁻¹ = L L'`` and ``L`` lower triangular,
  for one fixed ``h²``: ``C'V⁻¹D = (L'C)'(L'D)`` with unit weights.  A
  triangular product costs ``n²`` flops per column, half of a full rotation;
  building ``L`` costs about ``n³``, so it pays when a scan has more than about
  ``2n`` SNPs, one phenotype and a full-rank ``K``.

Both present the same interface to
:func:`~mixedmodels.genetics.association.weighted_cross_products`: ``apply``
and the weights (``w - w0``, ``w0``) of a phenotype in that basis.

* :class:`MixedWhitening`, the whitening's mixed-precision variant (same
  conditions, large ``n``): only the quadratic forms ``C'V⁻¹C`` need the
  ``n²``-per-column product, and it runs in single precision on a small part
  of them.  With ``c`` just below the smallest eigenvalue of ``V⁻¹``,
  ``V⁻¹ = c I + L L'`` (``L`` lower triangular, float32) and for centred columns
  ``C_c = C - 1μ'``::

      C'V⁻¹C = c C_c'C_c + (L'C_c)'(L'C_c) + C_c'v μ' + μ v'C_c + (1'v) μμ',  v = V⁻¹1,

  all in double precision except ``L'C_c``.  The single-precision term is
  ``C_c'(V⁻¹ - cI)C_c``, about a fifth of the total for a kinship of unrelated
  individuals, and its rounding errors (relative ~1e-7 per element) average
  over the ``n`` squares, so ``C'V⁻¹C`` is accurate to ~1e-9 relative.  The
  products with ``X`` and ``y`` are exact: ``C'(V⁻¹X)``, ``2 n p`` flops per
  column.  The scan recomputes in double precision (through ``U``) the SNPs whose
  statistic is large, where a relative error ``ε`` of the statistic moves the
  p-value by about ``ε · statistic / 2`` relative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.linalg
from scipy.linalg.blas import dgemm, dsyrk, dtrmm, ssyrk, strmm

from mixedmodels.genetics.likelihood import spectral_weights
from mixedmodels.genio.genotypes import mean_impute
from mixedmodels.genio.plink import MISSING_COUNT

__all__ = ["CentredBlock", "MixedWhitening", "Rotation", "Whitening", "whitening_pays"]


@dataclass(frozen=True)
class Rotation:
    """The eigenbasis of ``K``: ``U`` (n × k) with eigenvalues ``S`` (k,)."""

    U: np.ndarray
    S: np.ndarray

    @property
    def low_rank(self) -> bool:
        """Whether the complement of ``U`` (where ``V = (1 - h²) I``) must be added."""
        return self.U.shape[1] < self.U.shape[0]

    def apply(self, A: np.ndarray) -> np.ndarray:
        """``U'A`` (k × c) for ``A`` (n × c)."""
        return self.U.T @ A

    def weights(self, h2: float) -> tuple[np.ndarray, float]:
        """``(w - w0, w0)`` at ``h²``, see :func:`spectral_weights`."""
        w, w0, _ = spectral_weights(self.S, self.U.shape[0], np.array([h2]))
        return w[0] - w0[0], float(w0[0])


@dataclass(frozen=True)
class Whitening:
    """``L`` (n × n, lower triangular) with ``L L' = V⁻¹`` at one ``h²``."""

    L: np.ndarray

    low_rank = False

    @classmethod
    def at(cls, rotation: Rotation, h2: float) -> Whitening:
        """Factor ``V⁻¹ = (U diag(√w))(U diag(√w))'`` at ``h²`` (full-rank ``U`` only)."""
        w, _ = rotation.weights(h2)
        return cls(_gram_cholesky(rotation.U, np.sqrt(w)))

    def apply(self, A: np.ndarray) -> np.ndarray:
        """``L'A`` (n × c) by a triangular matrix product (BLAS ``trmm``)."""
        return dtrmm(1.0, self.L, np.asfortranarray(A), lower=1, trans_a=1)

    def weights(self, h2: float) -> tuple[np.ndarray, float]:
        """Unit weights: whitened columns are already ``V⁻¹``-orthonormalised."""
        return np.ones(self.L.shape[0]), 0.0


def _gram_cholesky(U: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of ``(U diag(scale))(U diag(scale))'`` (n × n), by ``syrk`` (one triangle)."""
    half = U * scale
    # half' is half in Fortran order: no copy; syrk fills the lower triangle that potrf reads.
    gram = dsyrk(1.0, half.T, trans=1, lower=1)
    del half  # n × n arrays: keep at most three alive (U, this product, its factor)
    return scipy.linalg.cholesky(gram, lower=True, overwrite_a=True, check_finite=False)


def _gram_cholesky32(U: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """:func:`_gram_cholesky` in float32 (``ssyrk``, ``spotrf``), Fortran order; double if that fails.

    The factor is only used in float32, and what the forms need is its backward
    error, ``L L' - U diag(scale²) U'``: element by element of the size that
    rounding the double factor to float32 leaves, and it averages over a
    quadratic form the same way (on the benchmark's first 1,000 SNPs the forms
    were within 1.1e-8 relative of the exact ones, 1.3e-8 with the rounded
    double factor), at a third of the time.  A factorisation that fails in
    float32 (a ``V⁻¹ - shift · I`` too ill-conditioned for it) is redone in double.
    """
    half = np.multiply(U, scale, dtype=np.float32)
    gram = ssyrk(1.0, half.T, trans=1, lower=1)
    del half
    try:
        L = scipy.linalg.cholesky(gram, lower=True, overwrite_a=True, check_finite=False)
    except np.linalg.LinAlgError:
        L = None
    del gram
    if L is None or not np.isfinite(L).all():
        L = _gram_cholesky(U, scale)
    return np.asfortranarray(L, dtype=np.float32)


def whitening_pays(rotation: Rotation, n_snps: int, n_phenotypes: int, reestimate: bool) -> bool:
    """Whether a whitened scan is cheaper: one ``h²``, full rank, more than ``2n`` SNPs."""
    n = rotation.U.shape[0]
    return n_phenotypes == 1 and not reestimate and not rotation.low_rank and n_snps > 2 * n


SHIFT_MARGIN = 0.999
"""``c = SHIFT_MARGIN · min(w)``: keeps ``V⁻¹ - cI`` safely positive definite for its Cholesky factor."""


@dataclass(frozen=True)
class MixedWhitening:
    """``V⁻¹ = shift · I + L L'`` at one ``h²``, ``L`` (n × n, lower triangular) in float32.

    ``ones_image`` is ``v = V⁻¹1`` (n,), ``ones_form`` ``1'V⁻¹1``; ``rotation`` and
    ``w`` (its weights at ``h²``) give the exact double-precision forms.
    """

    L: np.ndarray
    shift: float
    ones_image: np.ndarray
    ones_form: float
    rotation: Rotation
    w: np.ndarray

    low_rank = False

    @classmethod
    def at(cls, rotation: Rotation, h2: float) -> MixedWhitening:
        """Split ``V⁻¹`` at ``h²`` and factor ``V⁻¹ - shift · I`` (full-rank ``U`` only)."""
        w, _ = rotation.weights(h2)
        shift = SHIFT_MARGIN * float(w.min())
        L32 = _gram_cholesky32(rotation.U, np.sqrt(w - shift))
        U = rotation.U
        ones_image = U @ (w * U.sum(axis=0))
        return cls(L32, shift, ones_image, float(ones_image.sum()), rotation, w)

    def apply(self, A: np.ndarray) -> np.ndarray:
        """``V⁻¹A`` (n × c) in double precision: the partner of an unrotated ``C``."""
        U = self.rotation.U
        return U @ (self.w[:, None] * (U.T @ A))

    def weights(self, h2: float) -> tuple[np.ndarray, float]:
        """Unit weights (unused: the cross products come from :meth:`gram` and :meth:`apply`)."""
        return np.ones(self.L.shape[0]), 0.0

    def gram(self, C: np.ndarray, Cv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``C_j'V⁻¹C_j`` and ``C_c'C_c`` (c, q, q) for ``C`` (n, c, q), the mixed-precision way.

        ``Cv`` (c, q) is ``C'v``, ``v = V⁻¹1`` (the caller has it from its one
        product of ``C`` with ``[v, V⁻¹X, V⁻¹y]``).  ``C_c'C_c`` (zero for a SNP
        that does not vary) comes as ``C'C - n μμ'``.
        """
        n, c, q = C.shape
        mu = C.mean(axis=0)
        centred = np.subtract(C, mu, dtype=np.float32).reshape(n, c * q)
        Z = strmm(1.0, self.L, np.asfortranarray(centred), lower=1, trans_a=1, overwrite_b=1)
        Z = Z.astype(np.float64).reshape(n, c, q)
        form = np.einsum("ncq,ncr->cqr", Z, Z)
        spread = np.einsum("ncq,ncr->cqr", C, C) - n * mu[:, :, None] * mu[:, None, :]
        form += self.shift * spread
        mean_part = (Cv - self.ones_form * mu)[:, :, None] * mu[:, None, :]  # C_c'v μ'
        form += mean_part + np.swapaxes(mean_part, 1, 2)
        return form + self.ones_form * mu[:, :, None] * mu[:, None, :], spread

    def linear(self, block: CentredBlock, partners: np.ndarray) -> np.ndarray:
        """``C'P`` (c, r) for a plain block and ``P`` (n, r) in double precision.

        By scipy's BLAS, the library of the triangular product: numpy's own copy
        of OpenBLAS would leave its threads spinning into that product.
        """
        return dgemm(1.0, block.filled, np.asfortranarray(partners), trans_a=1)

    def plain_gram(self, block: CentredBlock, Cv: np.ndarray) -> np.ndarray:
        """``g_j'V⁻¹g_j`` (c,) for a plain block, as :meth:`gram` does it for one column per SNP."""
        mu = block.mu
        Z = strmm(1.0, self.L, block.centred, lower=1, trans_a=1, overwrite_b=1)
        form = column_squares(Z)
        form += self.shift * block.spread
        form += 2.0 * (Cv - self.ones_form * mu) * mu + self.ones_form * mu * mu
        return form

    def exact_gram(self, C: np.ndarray) -> np.ndarray:
        """``C_j'V⁻¹C_j`` (c, q, q) in double precision through ``U'C`` (for a few SNPs)."""
        n, c, q = C.shape
        C_rot = (self.rotation.U.T @ C.reshape(n, c * q)).reshape(-1, c, q)
        return np.einsum("kcq,k,kcr->cqr", C_rot, self.w, C_rot)


class CentredBlock(NamedTuple):
    """A block of SNPs (one column each) in the forms the mixed-precision scan needs.

    ``filled`` (n, c) float64, Fortran order: counts, a missing call replaced by
    the SNP's mean; ``centred`` (n, c) float32, Fortran order: ``filled - mu``;
    ``mean`` (c,) the mean of the observed calls (NaN where none is); ``mu`` (c,)
    the mean of ``filled`` (0 where no call is observed); ``spread`` (c,)
    ``C_c'C_c``, the sum of squares of the centred column.
    """

    filled: np.ndarray
    centred: np.ndarray
    mean: np.ndarray
    mu: np.ndarray
    spread: np.ndarray

    @classmethod
    def of(cls, G: np.ndarray) -> CentredBlock:
        """From allele counts ``G`` (n, c): int8 with ``MISSING_COUNT`` or float with ``NaN``."""
        if G.dtype != np.int8:
            filled, mean = mean_impute(G)
            filled = np.asfortranarray(filled, dtype=np.float64)
            mu = filled.mean(axis=0)
            spread = np.einsum("nc,nc->c", filled, filled) - G.shape[0] * mu * mu
            return cls(filled, _centred32(filled, mu), mean, mu, spread)
        # Integer counts: the sums, and so the mean and the spread, come exactly from them.
        n = G.shape[0]
        missing = G == MISSING_COUNT
        n_missing = missing.sum(axis=0)
        n_obs = n - n_missing
        total = G.sum(axis=0, dtype=np.int64) - MISSING_COUNT * n_missing
        squares = total + 2 * (G == 2).sum(axis=0)  # sum of g² over observed calls: n1 + 4 n2
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = total / n_obs
        mu = np.where(n_obs > 0, mean, 0.0)
        spread = squares - total * mu
        filled = G.astype(np.float64, order="F")
        centred = _centred32(G, mu)
        if n_missing.any():
            np.copyto(filled, mu, where=missing)
            np.copyto(centred, np.float32(0.0), where=missing)
        return cls(filled, centred, mean, mu, spread)


def _centred32(G: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """``G - mu`` in float32 (both rounded to float32 first), Fortran order, for ``strmm``."""
    return np.subtract(G, mu.astype(np.float32), dtype=np.float32, order="F")


COLUMN_BATCH = 64
"""Columns converted to float64 at a time by :func:`column_squares` (stays in cache)."""


def column_squares(Z: np.ndarray) -> np.ndarray:
    """Sum of squares of each column of ``Z`` (n, c), accumulated in float64."""
    out = np.empty(Z.shape[1])
    for j in range(0, Z.shape[1], COLUMN_BATCH):
        part = Z[:, j : j + COLUMN_BATCH].astype(np.float64)
        out[j : j + COLUMN_BATCH] = np.einsum("nc,nc->c", part, part)
    return out
