"""Benchmark: association scan of 10^5 SNPs on 5,000 individuals, beside FaST-LMM.

Run from the repository root::

    python benchmarks/genetics_scan.py                         # ours only
    python benchmarks/genetics_scan.py --fastlmm-python /path/to/venv/bin/python

Steps, each in its own process so that peak memory is that of the step alone:

1. ``simulate``  — 5,000 unrelated individuals, 10^5 SNPs (1% missing calls),
   a polygenic phenotype (1,000 causal SNPs, h² = 0.5) with age and sex
   covariates; written as PLINK files and whitespace tables in ``--workdir``.
2. ``decompose`` — ``K = kinship(G)`` from all SNPs, block-wise, and its
   eigendecomposition, saved for the scans (timed, not part of the target).
3. ``ours``      — :func:`mixedmodels.genetics.scan` with the saved
   decomposition, ``--repeats`` times: wall time of the scan (null h² by REML
   included), time per SNP, peak resident memory.  The default precision
   (mixed-precision whitening at this size); with ``--with-double`` also
   ``precision="double"`` (the exact whitening), alternating, and the
   agreement of the two tables' p-values.
4. ``fastlmm``   — FaST-LMM's ``single_snp`` on the same files, same ``K`` and
   the same ``h²`` (ours), no leave-one-chromosome-out: a first run that
   eigendecomposes ``K`` and caches it, then ``--repeats`` runs from the cache.

5. ``heritability`` — REML heritability of 10 phenotypes (the simulated one
   and 9 more drawn from the model with h² from 0 to 0.8) with the saved
   decomposition: time per phenotype.

The summary (medians, ratios, agreement of the p-values) goes to
``benchmarks/results/genetics_scan.json`` and is printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def _peak_mb() -> float:
    """Peak resident memory of this process, in MB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def simulate(work: Path, n: int, m: int, seed: int = 1) -> None:
    """PLINK files and phenotype/covariate tables of a simulated panel."""
    from bed_reader import create_bed

    rng = np.random.default_rng(seed)
    freq = rng.uniform(0.05, 0.5, size=m)
    causal = np.sort(rng.choice(m, size=1000, replace=False))
    effect = rng.normal(size=1000)
    genetic = np.zeros(n)
    iid = [f"i{i:05d}" for i in range(n)]
    properties = {
        "fid": iid,
        "iid": iid,
        "sid": [f"rs{j}" for j in range(m)],
        "chromosome": np.repeat(np.arange(1, 11), m // 10).astype(str),
        "bp_position": np.tile(np.arange(m // 10) * 1000 + 1, 10),
    }
    with create_bed(work / "geno.bed", iid_count=n, sid_count=m, properties=properties) as bed:
        for start in range(0, m, 5000):
            block = rng.binomial(2, freq[start : start + 5000], size=(n, min(5000, m - start)))
            hit = (causal >= start) & (causal < start + block.shape[1])
            g = block[:, causal[hit] - start]
            genetic += ((g - g.mean(0)) / g.std(0)) @ effect[hit]
            block = block.astype(np.int8)
            block[rng.random(block.shape) < 0.01] = -127  # bed-reader's missing call
            for column in block.T:
                bed.write(column)
    age = rng.uniform(20, 70, size=n).round(1)
    sex = rng.integers(0, 2, size=n)
    genetic *= np.sqrt(0.5 / genetic.var())
    y = 0.01 * age + 0.2 * sex + genetic + rng.normal(scale=np.sqrt(0.5), size=n)
    _table(work / "pheno.txt", iid, [y])
    _table(work / "covar.txt", iid, [age, sex])


def _table(path: Path, iid: list[str], columns: list[np.ndarray]) -> None:
    """FaST-LMM's layout: family id, individual id, values; no header."""
    rows = (" ".join([i, i, *(f"{c[k]:.6g}" for c in columns)]) for k, i in enumerate(iid))
    path.write_text("\n".join(rows) + "\n")


def decompose(work: Path) -> dict:
    from mixedmodels.genetics import eigh_kinship, kinship, read_plink

    t0 = time.perf_counter()
    K = kinship(read_plink(work / "geno"), chunk_size=2000)
    t1 = time.perf_counter()
    dec = eigh_kinship(K)
    t2 = time.perf_counter()
    np.save(work / "K.npy", K)
    np.savez(work / "decomposition.npz", U=dec.U, S=dec.S)
    return {"kinship_s": t1 - t0, "eigh_s": t2 - t1, "peak_mb": _peak_mb()}


def _inputs(work: Path):
    y = np.loadtxt(work / "pheno.txt", usecols=2)
    covar = np.loadtxt(work / "covar.txt", usecols=(2, 3))
    return y, np.column_stack([np.ones(len(y)), covar])


def ours(work: Path, chunk: int, save: bool, h2: float | None, precision: str) -> dict:
    from mixedmodels.genetics import Decomposition, read_plink, scan

    y, X = _inputs(work)
    saved = np.load(work / "decomposition.npz")
    dec = Decomposition(U=saved["U"], S=saved["S"])
    genotypes = read_plink(work / "geno")
    t0 = time.perf_counter()
    table = scan(genotypes, y, X, dec, chunk_size=chunk, h2=h2, precision=precision)
    seconds = time.perf_counter() - t0
    if save:
        table[["snp", "lrt", "p_lrt", "wald"]].to_csv(
            work / f"ours_{precision}.tsv", sep="\t", index=False
        )
    h2 = table.attrs["null"]["y"]["h2"]
    return {
        "scan_s": seconds,
        "peak_mb": _peak_mb(),
        "h2": h2,
        "n_snps": len(table),
        "basis": table.attrs["basis"],
    }


def fastlmm(work: Path, cached: bool, save: bool) -> dict:
    """FaST-LMM's single_snp; a cached run reuses its eigendecomposition of K and its h².

    (FaST-LMM cannot write its cache when given ``h2``, so it estimates its own.)
    """
    import pandas as pd
    from fastlmm.association import single_snp
    from pysnptools.kernelreader import KernelData
    from pysnptools.snpreader import Bed

    bed = Bed(str(work / "geno.bed"), count_A1=True)
    iid = bed.iid
    K0 = KernelData(iid=iid, val=np.load(work / "K.npy"))
    t0 = time.perf_counter()
    table = single_snp(
        bed,
        str(work / "pheno.txt"),
        K0=K0,
        covar=str(work / "covar.txt"),
        leave_out_one_chrom=False,
        cache_file=str(work / "fastlmm.cache.npz"),
        count_A1=True,
    )
    seconds = time.perf_counter() - t0
    if save:
        pd.DataFrame({"snp": table["SNP"], "p": table["PValue"]}).to_csv(
            work / "fastlmm.tsv", sep="\t", index=False
        )
    with np.load(work / "fastlmm.cache.npz") as cache:
        h2 = float(np.ravel(cache["h2_0"])[0])
    return {"run_s": seconds, "cached": cached, "peak_mb": _peak_mb(), "h2": h2}


def heritability_step(work: Path) -> dict:
    """Ten phenotypes fitted with one saved decomposition; time per phenotype."""
    from mixedmodels.genetics import Decomposition, heritability

    y, X = _inputs(work)
    saved = np.load(work / "decomposition.npz")
    dec = Decomposition(U=saved["U"], S=saved["S"])
    rng = np.random.default_rng(2)
    h2_true = np.linspace(0, 0.8, 9)
    g = dec.U @ (np.sqrt(dec.S)[:, None] * rng.normal(size=(len(y), 9)))
    noise = rng.normal(size=(len(y), 9))
    simulated = (X @ [1, 0.01, 0.2])[:, None] + np.sqrt(h2_true) * g + np.sqrt(1 - h2_true) * noise
    Y = np.column_stack([y, simulated])
    t0 = time.perf_counter()
    fits = heritability(Y, X, dec)
    seconds = time.perf_counter() - t0
    return {
        "phenotypes": Y.shape[1],
        "total_s": seconds,
        "per_phenotype_s": seconds / Y.shape[1],
        "h2_true": [None, *h2_true.tolist()],
        "h2_reml": [f.h2 for f in fits],
    }


def _child(python: str, step: str, args: argparse.Namespace, *extra: str) -> dict:
    """Run one step in a fresh process and return its JSON report."""
    command = [
        python,
        __file__,
        "--step",
        step,
        "--workdir",
        str(args.workdir),
        "--n",
        str(args.n),
        "--snps",
        str(args.snps),
        "--chunk",
        str(args.chunk),
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _agreement(work: Path) -> dict:
    """Compare p-values SNP by SNP at the same h².

    FaST-LMM reports an F test of a Wald statistic whose residual variance has
    ``n - p`` in place of our ML ``n``: ``F = wald (n - p - 1) / n`` on (1, n - p - 1)
    degrees of freedom.  Converted so, ours must agree to rounding; our LRT
    p-values differ from FaST-LMM's by the choice of test, reported too.
    """
    import pandas as pd
    from scipy.stats import f

    a = pd.read_csv(work / "ours_auto.tsv", sep="\t").set_index("snp")
    b = pd.read_csv(work / "fastlmm.tsv", sep="\t").set_index("snp")
    joined = a.join(b, how="inner")
    n, p = _inputs(work)[1].shape
    as_fastlmm = f.sf(joined["wald"] * (n - p - 1) / n, 1, n - p - 1)
    log_p = np.log10(joined["p"])
    return {
        "snps_compared": len(joined),
        "max_abs_diff_log10_p_same_test": float(np.abs(np.log10(as_fastlmm) - log_p).max()),
        "max_abs_diff_log10_p_our_lrt": float(np.abs(np.log10(joined["p_lrt"]) - log_p).max()),
    }


def _precision_agreement(work: Path) -> dict:
    """The default (mixed precision where it pays) against precision="double", SNP by SNP."""
    import pandas as pd
    from scipy.stats import chi2

    a = pd.read_csv(work / "ours_auto.tsv", sep="\t").set_index("snp")
    b = pd.read_csv(work / "ours_double.tsv", sep="\t").set_index("snp")
    joined = a.join(b, how="inner", rsuffix="_double").dropna()
    out = {"snps_compared": len(joined)}
    for test in ("lrt", "wald"):
        log_p = chi2.logsf(joined[test], 1)
        log_p_double = chi2.logsf(joined[f"{test}_double"], 1)
        out[f"max_rel_diff_p_{test}"] = float(np.abs(np.expm1(log_p - log_p_double)).max())
    out["max_statistic"] = float(joined["lrt_double"].max())
    return out


def _machine() -> dict:
    import numpy

    with open("/proc/cpuinfo") as info:
        names = [line.split(":")[1].strip() for line in info if line.startswith("model name")]
    cpu = names[0] if names else platform.processor()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "load_average_at_start": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--snps", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mixedmodels-genetics-bench"))
    parser.add_argument("--fastlmm-python", help="interpreter with fastlmm installed")
    parser.add_argument("--redecompose", action="store_true", help="time the decomposition again")
    parser.add_argument(
        "--with-double",
        action="store_true",
        help='also time precision="double" (the exact scan), alternating with the default',
    )
    parser.add_argument("--precision", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--h2", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--save", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cached", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        steps = {
            "decompose": lambda: decompose(args.workdir),
            "ours": lambda: ours(args.workdir, args.chunk, args.save, args.h2, args.precision),
            "fastlmm": lambda: fastlmm(args.workdir, args.cached, args.save),
            "heritability": lambda: heritability_step(args.workdir),
        }
        print(json.dumps(steps[args.step]()))
        return
    run(args)


def run(args: argparse.Namespace) -> None:
    args.workdir.mkdir(parents=True, exist_ok=True)
    report = {"machine": _machine(), "n": args.n, "snps": args.snps, "chunk": args.chunk}
    if not (args.workdir / "geno.bed").exists():
        t0 = time.perf_counter()
        simulate(args.workdir, args.n, args.snps)
        report["simulate_s"] = time.perf_counter() - t0
    report["decompose"] = _decomposition(args)
    report.update(_scans(args))
    report["heritability"] = _child(sys.executable, "heritability", args)
    report["machine"]["load_average_at_end"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "genetics_scan.json").write_text(json.dumps(report, indent=2) + "\n")
    print(_markdown(report))


def _decomposition(args: argparse.Namespace) -> dict:
    """Decompose once per work folder (``--redecompose`` to time it again)."""
    record = args.workdir / "decompose.json"
    if args.redecompose or not record.exists():
        record.write_text(json.dumps(_child(sys.executable, "decompose", args)))
    return json.loads(record.read_text())


def _scans(args: argparse.Namespace) -> dict:
    """Our scans, interleaved with FaST-LMM's cached runs when it is available.

    Interleaving exposes both to the same background load; the ratio is the
    median of the per-pair ratios as well as the ratio of the medians.
    """
    python = args.fastlmm_python
    if python:
        (args.workdir / "fastlmm.cache.npz").unlink(missing_ok=True)
        first = _child(python, "fastlmm", args)
    ours_runs, theirs, doubles = [], [], []
    for i in range(args.repeats):
        ours_runs.append(_child(sys.executable, "ours", args))
        if python:
            save = ["--save"] if i == 0 else []
            theirs.append(_child(python, "fastlmm", args, "--cached", *save))
        if args.with_double:
            doubles.append(_child(sys.executable, "ours", args, "--precision", "double"))
    report = {"ours": _summary(ours_runs, "scan_s", args.snps)}
    report["ours"]["h2_null_reml"] = ours_runs[0]["h2"]
    report["ours"]["basis"] = ours_runs[0]["basis"]
    if doubles:
        report["ours_double"] = _summary(doubles, "scan_s", args.snps)
        pairs = [b["scan_s"] / a["scan_s"] for a, b in zip(ours_runs, doubles)]
        report["ratio_double_over_default"] = {
            "of_medians": report["ours_double"]["median_s"] / report["ours"]["median_s"],
            "median_of_pairs": float(np.median(pairs)),
            "pairs": pairs,
        }
    if not python:
        return report
    h2 = ["--h2", str(first["h2"])]
    _child(sys.executable, "ours", args, "--save", *h2)
    if doubles:
        _child(sys.executable, "ours", args, "--save", *h2, "--precision", "double")
        report["agreement_default_vs_double"] = _precision_agreement(args.workdir)
    report["fastlmm"] = {"first_run_with_eigh_s": first["run_s"], "h2_null": first["h2"]}
    report["fastlmm"] |= _summary(theirs, "run_s", args.snps)
    pairs = [b["run_s"] / a["scan_s"] for a, b in zip(ours_runs, theirs)]
    report["ratio_fastlmm_over_ours"] = {
        "of_medians": report["fastlmm"]["median_s"] / report["ours"]["median_s"],
        "median_of_pairs": float(np.median(pairs)),
        "pairs": pairs,
    }
    report["agreement"] = _agreement(args.workdir)
    return report


def _summary(runs: list[dict], key: str, snps: int) -> dict:
    times = [r[key] for r in runs]
    median = float(np.median(times))
    return {
        "times_s": times,
        "median_s": median,
        "us_per_snp": 1e6 * median / snps,
        "peak_mb": max(r["peak_mb"] for r in runs),
    }


def _markdown(report: dict) -> str:
    lines = ["| step | median (s) | per SNP (µs) | peak memory (MB) |", "|---|---|---|---|"]
    dec = report["decompose"]
    lines.append(
        f"| kinship + eigh (ours, once) | {dec['kinship_s'] + dec['eigh_s']:.1f} | | "
        f"{dec['peak_mb']:.0f} |"
    )
    for name in ("ours", "ours_double", "fastlmm"):
        if name in report:
            r = report[name]
            lines.append(
                f"| scan, {name} | {r['median_s']:.1f} | {r['us_per_snp']:.0f} | "
                f"{r['peak_mb']:.0f} |"
            )
    h2 = report["heritability"]
    lines.append(
        f"\nHeritability, {h2['phenotypes']} phenotypes with one decomposition: "
        f"{h2['per_phenotype_s']:.3f} s per phenotype"
    )
    if "ratio_fastlmm_over_ours" in report:
        ratio = report["ratio_fastlmm_over_ours"]
        lines.append(
            f"\nFaST-LMM / ours: {ratio['of_medians']:.2f} (medians), "
            f"{ratio['median_of_pairs']:.2f} (median of interleaved pairs)"
        )
        lines.append(f"Agreement: {report['agreement']}")
    if "agreement_default_vs_double" in report:
        lines.append(f"Default vs double: {report['agreement_default_vs_double']}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
