"""Benchmark: leave-one-chromosome-out scan beside the single-kinship scan and FaST-LMM.

Run from the repository root::

    python benchmarks/genetics_loco.py                  # n = 2,000, 5 chromosomes × 2,000 SNPs
    python benchmarks/genetics_loco.py --n 1000 --snps-per-chrom 1000

The panel: two populations (Balding–Nichols frequencies, F_ST = 0.02), SNPs in
LD blocks of 20 (each haplotype a thresholded Gaussian AR(1) along the block,
ρ = 0.95), no missing calls by default (``--missing``: FaST-LMM scales a SNP
by the standard deviation of its observed calls, we by that of the
mean-imputed column, so with missing calls the kinships differ slightly).  The phenotype: 25 causal SNPs in distinct blocks
(h² = 0.15 together) on a polygenic background of 5% of the SNPs
(h² = 0.45), plus a population mean shift.  SNPs in blocks with no effect are
null: λ_GC is computed over them.  Measured:

* λ_GC over the SNPs outside causal blocks, LOCO and single-kinship;
* power: the share of causal SNPs with p < 1e-5, and the mean −log10 p of
  the causal SNPs;
* agreement with FaST-LMM's ``single_snp(leave_out_one_chrom=True)`` (our
  LOCO scan with ML ``h²``, as FaST-LMM fits it; its ``PValue`` is the Wald
  statistic on an F distribution, our ``p_wald_f``): the largest difference of
  log10 p as each tool estimates ``h²`` itself, and with FaST-LMM given our
  per-chromosome ``h²`` (the models then coincide);
* wall time of each scan (ours includes building and decomposing every LOCO
  kinship, as FaST-LMM's does).

Both tools run with one BLAS thread (``--threads``): on a shared machine a
multi-threaded ``eigh`` is many times slower and the timings meaningless.

Results go to ``benchmarks/results/genetics_loco.json`` and are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # BLAS threads fixed before numpy loads (see --threads)
    _threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "1"
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _threads

import numpy as np
import pandas as pd
from scipy.stats import norm

RESULTS = Path(__file__).parent / "results"


def simulate_genotypes(rng, n, n_chrom, per_chrom, missing, block=20, rho=0.95, fst=0.02):
    """Allele counts (n, m) of two populations with LD blocks; the population labels."""
    m = n_chrom * per_chrom
    pop = (np.arange(n) >= n // 2).astype(int)
    ancestral = rng.uniform(0.05, 0.5, size=m)
    a = ancestral * (1 - fst) / fst
    b = (1 - ancestral) * (1 - fst) / fst
    freq = rng.beta(a, b, size=(2, m)).clip(0.01, 0.99)
    G = np.empty((n, m))
    for start in range(0, m, block):
        stop = min(start + block, m)
        k = stop - start
        for _ in range(2):  # two haplotypes
            z = np.empty((n, k))
            z[:, 0] = rng.normal(size=n)
            for j in range(1, k):
                z[:, j] = rho * z[:, j - 1] + np.sqrt(1 - rho**2) * rng.normal(size=n)
            allele = z < norm.ppf(freq[pop, start:stop])
            G[:, start:stop] = allele if _ == 0 else G[:, start:stop] + allele
    G[rng.random(G.shape) < missing] = np.nan
    chrom = np.repeat(np.arange(1, n_chrom + 1), per_chrom)
    return G, chrom, pop


def simulate_phenotype(rng, G, pop, n_causal=25, h2_causal=0.15, h2_poly=0.45, block=20):
    filled = np.where(np.isnan(G), np.nanmean(G, axis=0), G)
    Z = (filled - filled.mean(0)) / filled.std(0)
    blocks = rng.choice(G.shape[1] // block, size=n_causal, replace=False)
    causal = blocks * block + rng.integers(0, block, size=n_causal)
    big = Z[:, causal] @ rng.normal(size=n_causal)
    spread = rng.choice(G.shape[1], size=G.shape[1] // 20, replace=False)  # 5% of SNPs
    poly = Z[:, spread] @ rng.normal(size=spread.size)
    parts = [
        np.sqrt(h2_causal) * big / big.std(),
        np.sqrt(h2_poly) * poly / poly.std(),
        np.sqrt(1 - h2_causal - h2_poly) * rng.normal(size=len(pop)),
    ]
    effect_blocks = np.union1d(blocks, spread // block)
    return sum(parts) + 0.3 * pop, causal, effect_blocks


def write_plink(work: Path, G, chrom):
    from bed_reader import to_bed

    n, m = G.shape
    to_bed(
        work / "geno.bed",
        G.astype(np.float32),
        properties={
            "iid": [f"i{i}" for i in range(n)],
            "fid": [f"i{i}" for i in range(n)],
            "sid": [f"s{j}" for j in range(m)],
            "chromosome": chrom.astype(str),
            "bp_position": np.tile(
                np.arange(1, m // len(np.unique(chrom)) + 1), len(np.unique(chrom))
            )
            * 100,
        },
    )


def ours(work: Path, y: np.ndarray, loco: bool) -> tuple[pd.DataFrame, float]:
    from mixedmodels.genetics import read_plink, scan

    geno = read_plink(work / "geno")
    pheno = pd.Series(y, index=geno.iid, name="y")
    t0 = time.perf_counter()
    table = scan(geno, pheno, loco=loco, reml=False, progress=False, chunk_size=2000)
    return table, time.perf_counter() - t0


def fastlmm(work: Path, y: np.ndarray) -> tuple[pd.DataFrame, float]:
    from fastlmm.association import single_snp
    from pysnptools.snpreader import Bed, SnpData

    bed = Bed(str(work / "geno.bed"), count_A1=True)
    pheno = SnpData(iid=bed.iid, sid=["y"], val=y[:, None])
    t0 = time.perf_counter()
    table = single_snp(bed, pheno, leave_out_one_chrom=True, count_A1=True)
    return table, time.perf_counter() - t0


def fastlmm_same_h2(work: Path, ours_loco: pd.DataFrame) -> pd.DataFrame:
    """FaST-LMM chromosome by chromosome with K0 = the other chromosomes and ``h2`` fixed at our
    null estimate: the same model, so the p-values must agree to rounding."""
    from fastlmm.association import single_snp
    from pysnptools.snpreader import Bed, SnpData

    bed = Bed(str(work / "geno.bed"), count_A1=True)
    y = np.loadtxt(work / "y.txt")
    pheno = SnpData(iid=bed.iid, sid=["y"], val=y[:, None])
    chrom = bed.pos[:, 0].astype(int)
    tables = []
    for c in np.unique(chrom):
        h2 = float(ours_loco.loc[ours_loco["chrom"].astype(int) == c, "h2"].iloc[0])
        tables.append(
            single_snp(bed[:, chrom == c], pheno, K0=bed[:, chrom != c], h2=h2, count_A1=True)
        )
    return pd.concat(tables).set_index("SNP").loc[ours_loco["snp"]]


def lambda_gc(p):
    from mixedmodels.genetics import genomic_inflation

    return genomic_inflation(p)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--chromosomes", type=int, default=5)
    parser.add_argument("--snps-per-chrom", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/genetics_loco"))
    parser.add_argument("--no-fastlmm", action="store_true")
    parser.add_argument("--missing", type=float, default=0.0, help="share of missing calls")
    parser.add_argument("--threads", default="1", help="BLAS threads, the same for both tools")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    G, chrom, pop = simulate_genotypes(
        rng, args.n, args.chromosomes, args.snps_per_chrom, args.missing
    )
    y, causal, blocks = simulate_phenotype(rng, G, pop)
    write_plink(args.workdir, G, chrom)
    np.savetxt(args.workdir / "y.txt", y)
    in_causal_block = np.isin(np.arange(G.shape[1]) // 20, blocks)  # blocks with an effect
    out: dict = {"n": args.n, "m": G.shape[1], "chromosomes": args.chromosomes,
                 "missing": args.missing, "blas_threads": args.threads,
                 "machine": platform.machine(), "python": platform.python_version()}  # fmt: skip
    for name, loco in (("single", False), ("loco", True)):
        table, seconds = ours(args.workdir, y, loco)
        p = table["p_lrt"].to_numpy()
        out[name] = {
            "seconds": seconds,
            "lambda_gc_null_snps": lambda_gc(p[~in_causal_block]),
            "power_p1e-5": float(np.mean(p[causal] < 1e-5)),
            "mean_log10p_causal": float(np.mean(-np.log10(p[causal]))),
        }
        if loco:
            ours_loco = table
    if not args.no_fastlmm:
        table, seconds = fastlmm(args.workdir, y)
        table = table.set_index("SNP").loc[ours_loco["snp"]]
        p = table["PValue"].to_numpy()
        diff = np.abs(np.log10(p) - np.log10(ours_loco["p_wald_f"].to_numpy()))
        h2_theirs = table["Nullh2"].to_numpy()
        h2_same = np.abs(h2_theirs - ours_loco["h2"].to_numpy()) < 1e-4
        out["fastlmm"] = {
            "seconds": seconds,
            "lambda_gc_null_snps": lambda_gc(p[~in_causal_block]),
            "power_p1e-5": float(np.mean(p[causal] < 1e-5)),
            "max_abs_diff_log10p": float(diff.max()),
            "max_abs_diff_log10p_same_h2": float(diff[h2_same].max()) if h2_same.any() else None,
            "share_snps_same_h2": float(h2_same.mean()),
            "null_h2_theirs": sorted(set(np.round(h2_theirs, 6))),
            "null_h2_ours": sorted(set(np.round(ours_loco["h2"].to_numpy(), 6))),
        }
        out["speed_ratio_fastlmm_over_ours"] = seconds / out["loco"]["seconds"]
        same = fastlmm_same_h2(args.workdir, ours_loco)
        gap = np.abs(np.log10(same["PValue"].to_numpy()) - np.log10(ours_loco["p_wald_f"]))
        out["fastlmm_same_h2"] = {
            "what": "FaST-LMM per chromosome, K0 = other chromosomes, h2 = our null ML estimate; "
            "its PValue against our p_wald_f (its Wald F test)",
            "max_abs_diff_log10p": float(gap.max()),
        }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "genetics_loco.json").write_text(json.dumps(out, indent=2, default=float))
    print(json.dumps(out, indent=2, default=float))


if __name__ == "__main__":
    main()
