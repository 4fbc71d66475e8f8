"""Principal components of standardised genotypes, as covariates for a scan (PLINK 2 ``--pca``).

With ``Z`` the ``n × m`` standardised genotypes (mean-imputed, unit variance,
monomorphic SNPs dropped; :func:`mixedmodels.genio.standardise`) and
``K = Z Z'/m`` the kinship, the principal components are the leading
eigenvectors ``u_1, ..., u_k`` of ``K`` (unit length), i.e. the left singular
vectors of ``Z``; eigenvalue ``s_l`` is the variance of ``Z``'s projection on
``u_l`` per SNP.  Computed from ``K`` built block-wise, so only ``n × n`` is
held: prune SNPs in LD first (:func:`ld_prune`) so that long-range LD does not
make a component of one region.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.linalg

from mixedmodels.errors import DataError
from mixedmodels.genetics.kinship import kinship
from mixedmodels.genio.genotypes import as_genotype_source
from mixedmodels.genio.samples import labels_of

__all__ = ["pca"]


def pca(G: object, k: int = 10, *, chunk_size: int = 2000) -> pd.DataFrame:
    """The ``k`` leading principal components of the standardised genotypes.

    Parameters
    ----------
    G : genotype source or array (n, m)
    k : int
        Components wanted, ``1 ≤ k < n``.

    Returns
    -------
    DataFrame, shape (n, k)
        Columns ``PC1..PCk`` (unit-length eigenvectors of ``K``; the sign of each
        is fixed so that its largest entry in absolute value is positive), indexed
        by sample ID when the genotypes have IDs.  ``attrs["eigenvalues"]`` holds
        ``s_1 ≥ ... ≥ s_k`` and ``attrs["variance_explained"]`` ``s_l / trace(K)``.
    """
    source = as_genotype_source(G)
    n = source.n_samples
    if not (isinstance(k, (int, np.integer)) and 1 <= k < n):
        raise DataError(f"k must be a number of components between 1 and {n - 1}, not {k!r}")
    K = np.asarray(kinship(source, chunk_size=chunk_size), dtype=np.float64)
    S, U = scipy.linalg.eigh(K, subset_by_index=(n - k, n - 1), check_finite=False)
    S, U = S[::-1], U[:, ::-1]
    U = U * np.sign(U[np.argmax(np.abs(U), axis=0), np.arange(k)])
    ids = labels_of(source)
    frame = pd.DataFrame(U, columns=[f"PC{j + 1}" for j in range(k)], index=ids)
    frame.attrs["eigenvalues"] = S.tolist()
    frame.attrs["variance_explained"] = (S / np.trace(K)).tolist()
    return frame
