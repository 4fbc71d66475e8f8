"""Genotype reading and standardisation (mixedmodels.variance.genotypes)."""

import numpy as np
import pytest

from mixedmodels.errors import DataError
from mixedmodels.variance.genotypes import open_panel, standardise


def test_grm_matches_reference_kernel(genetics, reference):
    # ../shared/reference/genetics/geno_kernel.json: K = Zs Zs'/m, Zs from counts of the first bim allele.
    ref = reference("geno_kernel_excerpt")
    K = genetics.K
    assert K.shape == (ref["n"], ref["n"])
    np.testing.assert_allclose(np.trace(K), ref["K_trace"], rtol=1e-10)
    np.testing.assert_allclose(K[:3, :3], ref["K_first"], rtol=1e-10)


def _decode_bed(path, n: int, snps: int) -> np.ndarray:
    """Counts of the first bim allele read straight from the bed bytes (PLINK's SNP-major format).

    Each individual has two bits, lowest first: 00 = homozygous for the first
    allele (2 copies), 10 = heterozygous (1), 11 = homozygous for the second (0), 01 = missing.
    """
    raw = np.fromfile(path, dtype=np.uint8)
    assert raw[:3].tolist() == [0x6C, 0x1B, 0x01]
    per_snp = (n + 3) // 4
    codes = raw[3 : 3 + per_snp * snps].reshape(snps, per_snp)
    bits = (codes[:, :, None] >> np.array([0, 2, 4, 6])) & 3
    counts = np.array([2.0, np.nan, 1.0, 0.0])[bits.reshape(snps, -1)[:, :n]]
    return counts.T


def test_counted_allele_is_the_first_bim_allele(genetics):
    from mixedmodels.variance.genotypes import read_dosages

    n = len(genetics.panel.fam)
    expected = _decode_bed(genetics.path / "geno.bed", n, 10)
    np.testing.assert_array_equal(read_dosages(genetics.panel, np.s_[:10]), expected)


def test_standardise_imputes_centres_scales_and_drops_constants():
    G = np.array([[0.0, 1.0, 2.0], [np.nan, 1.0, 0.0], [2.0, 1.0, 1.0]])
    Zs = standardise(G)
    assert Zs.shape == (3, 2)  # the constant column is dropped
    np.testing.assert_allclose(Zs[1, 0], 0.0)  # imputed by the mean, then centred
    np.testing.assert_allclose(Zs.mean(axis=0), 0.0, atol=1e-15)
    np.testing.assert_allclose(Zs.std(axis=0), 1.0)


def test_missing_plink_file_is_reported(tmp_path):
    with pytest.raises(DataError, match="not found"):
        open_panel(tmp_path / "nothing")
