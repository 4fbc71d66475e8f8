"""Where one objective evaluation spends its time, and how far it is from the machine's limit.

Usage::

    python benchmarks/profile_eval.py [--evals 30] [--scale-n 1e6]

For InstEval (``y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)``) and the
10^6-observation crossed case of ``scale.py``, at the fitted θ:

- the median time of ``m.objective_at(theta)``;
- a breakdown of ``m.system.update_L()`` into its blocks (first-block factor,
  the refill of L21, the assembly of C22 = ΛB'A22ΛB + I − L21 L21', the
  Cholesky factor of block B, the solve for L32, the rest), by timing those
  methods on the model's own objects;
- the theoretical flop counts (dense Cholesky of block B: q_B³/3; the sparse
  product L21 L21': one multiply-add per pair of non-zeros sharing a column)
  and what this machine achieves on a numpy/LAPACK Cholesky of the same size
  and on streaming memory, so the gap to the limit is explicit;
- the top functions of a cProfile of the evaluations.

Results: ``benchmarks/results/profile_eval.{md,json}``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from contextlib import contextmanager

import benchlib as bl
import numpy as np

INSTEVAL = "y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)"


# ---- models at their optimum ----------------------------------------------------------------
def insteval_model():
    import mixedmodels as mm

    return mm.LinearMixedModel(INSTEVAL, mm.datasets.load("insteval")).fit()


def scale_model(n: int):
    import scale

    import mixedmodels as mm

    return mm.LinearMixedModel(scale.MODELS["crossed"], scale.make_data(n)).fit()


# ---- timing -------------------------------------------------------------------------------
def median_seconds(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return bl.median(times)


class StageClock:
    """Accumulated seconds and calls of wrapped callables, by stage name."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
                self.calls[name] = self.calls.get(name, 0) + 1

        return timed


# stage name -> method of the PenalizedSystem (absent ones are skipped: the core changes)
SYSTEM_STAGES = {
    "L21 refill (ΛB'A21 R1)": "_update_L21",
    "C22 assembly, dense (incl. L21 L21')": "_C22_dense",
    "C22 assembly, sparse (incl. L21 L21')": "_C22_sparse",
    "A32 ΛB": "_A32_LambdaB",
}
# (stage name, method of block B's factor); the dense path of scalar terms factors block B
# bordered by the X/y rows (factor_workspace), which gives L32 without a solve
FACTOR_STAGES = [
    ("Cholesky of block B", "factor"),
    ("Cholesky of block B", "factor_workspace"),
    ("L32 solve (L22⁻¹ C32')", "solve_L"),
]


@contextmanager
def instrumented(system, clock: StageClock):
    """Time the stages of ``system.update_L`` by shadowing methods on the instances."""
    from mixedmodels import blocks

    patched = []
    for name, attr in SYSTEM_STAGES.items():
        if hasattr(system, attr):
            setattr(system, attr, clock.wrap(name, getattr(system, attr)))
            patched.append((system, attr))
    factor = getattr(system, "factorB", None)
    for name, attr in FACTOR_STAGES:
        if factor is not None and hasattr(factor, attr):
            setattr(factor, attr, clock.wrap(name, getattr(factor, attr)))
            patched.append((factor, attr))
    first = getattr(blocks, "factor_first_block", None)
    if first is not None:
        blocks.factor_first_block = clock.wrap("first block (L11, R1)", first)
    try:
        yield
    finally:
        for obj, attr in patched:
            delattr(obj, attr)  # the class's method shows through again
        if first is not None:
            blocks.factor_first_block = first


def breakdown(m, theta: np.ndarray, evals: int) -> dict[str, float]:
    """Mean milliseconds per evaluation of each stage, and the remainder."""
    clock = StageClock()
    with instrumented(m.system, clock):
        t0 = time.perf_counter()
        for _ in range(evals):
            m.objective_at(theta)
        total = (time.perf_counter() - t0) / evals
    out = {name: 1e3 * s / evals for name, s in clock.seconds.items()}
    out["rest (L31, C33, L33, objective, θ)"] = 1e3 * total - sum(out.values())
    out["total"] = 1e3 * total
    return out


def cprofile_top(m, theta: np.ndarray, evals: int, top: int = 12) -> str:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(evals):
        m.objective_at(theta)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).strip_dirs().sort_stats("tottime").print_stats(top)
    lines = buf.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    return "\n".join(lines[start:]).rstrip()


PRODUCT = "L21 L21' (lower triangle)"


# ---- flop counts ------------------------------------------------------------------------------
def column_counts(L21) -> np.ndarray:
    """Non-zeros in each column of L21 (one column per level of the first term)."""
    return np.bincount(L21.indices, minlength=L21.shape[1]).astype(np.int64)


def flop_counts(m) -> dict[str, float]:
    """Floating-point operations of one update_L, by block (a multiply-add is 2 flops)."""
    s = m.system
    qB, p1 = s.qB, s.Xy.shape[1]
    out = {"q1": s.q1, "qB": qB, "p+1": p1}
    if not qB:
        return out
    counts = column_counts(s.L21)
    factor = s.factorB
    out["nnz(L21)"] = int(s.L21.nnz)
    out[PRODUCT] = 2.0 * float((counts * (counts + 1) // 2).sum())
    out["Cholesky of B"] = (
        cholmod_flops(factor) if getattr(factor, "sparse", False) else qB**3 / 3.0
    )
    out["L32 solve"] = float(qB) ** 2 * p1
    out["C32 = A32ΛB − (L21 L31')'"] = 2.0 * out["nnz(L21)"] * p1
    return out


def cholmod_flops(factor) -> float:
    """Σ_j c_j² over the columns of CHOLMOD's L (c_j: non-zeros in column j)."""
    L = factor._factor.L()
    return float((np.diff(L.indptr).astype(np.float64) ** 2).sum())


# ---- what this machine can do -----------------------------------------------------------------
def random_spd(q: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((q, q))
    return np.asfortranarray(G @ G.T / q + np.eye(q))


def cholesky_reference(q: int, reps: int = 15) -> dict[str, float]:
    """Median seconds of numpy's and LAPACK's (scipy) dense Cholesky of a q x q matrix."""
    import scipy.linalg as sla

    A = random_spd(q)
    t_np = median_seconds(lambda: np.linalg.cholesky(A), reps)
    t_lapack = median_seconds(
        lambda: sla.cholesky(A, lower=True, overwrite_a=False, check_finite=False), reps
    )
    flops = q**3 / 3.0
    return {
        "q": q,
        "numpy_s": t_np,
        "lapack_s": t_lapack,
        "numpy_gflops": flops / t_np / 1e9,
        "lapack_gflops": flops / t_lapack / 1e9,
    }


def read_bandwidth(nbytes: int = 2**28, reps: int = 7) -> float:
    """GB/s of summing a large float64 array: the rate of a memory-bound pass."""
    x = np.ones(nbytes // 8)
    return nbytes / median_seconds(lambda: x.sum(), reps) / 1e9


# ---- analysis ------------------------------------------------------------------------------------
def limit_seconds(flops: dict, chol: dict | None, bandwidth: float) -> float:
    """A floor for one evaluation on this machine.

    Block B's Cholesky at LAPACK's measured rate, plus the sparse product at
    whichever is slower: its flops at the same rate, or the traffic nobody can
    avoid (reading L21's values and indices once, writing C22 once) at the
    measured memory bandwidth.
    """
    if not flops.get("qB"):
        return float("nan")
    rate = chol["lapack_gflops"] * 1e9 if chol else float("nan")
    traffic = (12.0 * flops["nnz(L21)"] + 8.0 * flops["qB"] ** 2) / (bandwidth * 1e9)
    return flops["Cholesky of B"] / rate + max(flops[PRODUCT] / rate, traffic)


def analyse(label: str, m, evals: int, bandwidth: float) -> dict:
    """Everything with the BLAS threads the fit itself chose (its thread policy).

    Outside a fit OpenBLAS uses every core; with a busy neighbour its
    spinning threads make a Cholesky of this size 10-30 times slower, which
    no fit sees.
    """
    from mixedmodels.threads import blas_threads_for

    with blas_threads_for(m.system.dense_dim):
        return analyse_here(label, m, evals, bandwidth)


def analyse_here(label: str, m, evals: int, bandwidth: float) -> dict:
    theta = np.asarray(m.optsum.final, dtype=float)
    m.objective_at(theta)  # warm caches
    per_eval = median_seconds(lambda: m.objective_at(theta), evals)
    flops = flop_counts(m)
    dense = flops.get("qB") and not getattr(m.system.factorB, "sparse", False)
    chol = cholesky_reference(flops["qB"]) if dense else None
    stages = breakdown(m, theta, evals)
    return {
        "label": label,
        "nobs": m.nobs,
        "feval": m.optsum.feval,
        "per_eval_s": per_eval,
        "flops": flops,
        "cholesky_reference": chol,
        "stages_ms": stages,
        "limit_s": limit_seconds(flops, chol, bandwidth),
        "fit_estimate_s": per_eval * m.optsum.feval,
        "cprofile": cprofile_top(m, theta, evals),
    }


def achieved(flops: float, ms: float | None) -> str:
    return "–" if not ms else f"{flops / (ms * 1e-3) / 1e9:.2f} GFLOP/s"


def model_markdown(r: dict) -> str:
    f, st, chol = r["flops"], r["stages_ms"], r["cholesky_reference"]
    chol_ms = st.get("Cholesky of block B")
    prod_ms = st.get("C22 assembly, dense (incl. L21 L21')") or st.get(
        "C22 assembly, sparse (incl. L21 L21')"
    )
    lines = [
        f"### {r['label']}\n",
        (
            f"n = {r['nobs']}, q1 = {f['q1']} (first term, diagonal), q_B = {f['qB']}, p + 1 = {f['p+1']}, "
            f"nnz(L21) = {f.get('nnz(L21)', 0)}; {r['feval']} evaluations in the fit; "
            f"other processes kept {r['other_cores']:.2f} cores busy meanwhile.\n"
        ),
        (
            f"- one evaluation (`objective_at`, median): **{1e3 * r['per_eval_s']:.2f} ms**; × evaluations = "
            f"{r['fit_estimate_s']:.2f} s of the fit"
        ),
        (
            f"- floor estimate on this machine: {1e3 * r['limit_s']:.2f} ms; we are at "
            f"**{r['per_eval_s'] / r['limit_s']:.1f}×** the floor"
        ),
    ]
    if chol:
        lines.append(
            f"- Cholesky of B: {f['Cholesky of B'] / 1e6:.1f} Mflop; ours {fmt_ms(chol_ms)} ({achieved(f['Cholesky of B'], chol_ms)}); "
            f"LAPACK alone {1e3 * chol['lapack_s']:.2f} ms ({chol['lapack_gflops']:.2f} GFLOP/s), numpy "
            f"{1e3 * chol['numpy_s']:.2f} ms ({chol['numpy_gflops']:.2f} GFLOP/s)"
        )
    prod_flops = f.get(PRODUCT, 0.0)
    lines.append(
        f"- L21 L21': {prod_flops / 1e6:.1f} Mflop; C22 assembly {fmt_ms(prod_ms)} ({achieved(prod_flops, prod_ms)})"
    )
    lines += ["", "| block | ms per evaluation | share |", "|---|---:|---:|"]
    lines += [
        f"| {k} | {v:.3f} | {100 * v / st['total']:.0f}% |" for k, v in st.items() if k != "total"
    ]
    lines += [
        f"| total (instrumented) | {st['total']:.3f} | 100% |",
        "",
        "cProfile, top functions by own time:",
        "",
        "```",
        r["cprofile"],
        "```",
    ]
    return "\n".join(lines)


def fmt_ms(ms: float | None) -> str:
    return "–" if ms is None else f"{ms:.2f} ms"


# ---- main ------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--evals", type=int, default=30, help="evaluations timed per model")
    p.add_argument("--scale-n", type=float, default=1e6, help="observations of the scale case")
    p.add_argument("--out", default=str(bl.RESULTS_DIR))
    return p.parse_args(argv)


def main(argv=None) -> None:
    from pathlib import Path

    args = parse_args(argv)
    bl.ensure_python({**bl.BASE_NEEDS})
    bandwidth = read_bandwidth()
    n = int(args.scale_n)
    results = []
    for label, make in [
        (f"InstEval: {INSTEVAL}", insteval_model),
        (
            f"scale, n = {n:.0e}: y ~ 1 + x + (1|a) + (1|b), {n // 10} × 1000 levels",
            lambda: scale_model(n),
        ),
    ]:
        print(f"[profile] {label}", file=sys.stderr, flush=True)
        model = make()
        bl.wait_for_quiet(max_wait=30.0)  # a busy neighbour would distort BLAS timings most
        with bl.OtherLoad() as load:
            results.append(analyse(label, model, args.evals, bandwidth))
        results[-1]["other_cores"] = load.cores
    desc = bl.machine_description(with_r=False)
    md = (
        "\n\n".join(
            [
                "# Cost of one objective evaluation",
                "## Machine\n\n" + bl.machine_markdown(desc),
                f"Memory read bandwidth (numpy sum of 256 MiB): {bandwidth:.1f} GB/s.",
            ]
            + [model_markdown(r) for r in results]
        )
        + "\n"
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "profile_eval.md").write_text(md)
    bl.save_json(
        out / "profile_eval.json",
        {
            "bandwidth_gbs": bandwidth,
            "machine": desc,
            "models": [{k: v for k, v in r.items() if k != "cprofile"} for r in results],
        },
    )
    print(md)


if __name__ == "__main__":
    main()
