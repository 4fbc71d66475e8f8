"""Helpers shared by the benchmark scripts: peers (R/lme4, statsmodels), the
machine description, statistics of repeated timings and result files.

The scripts are run as ``python benchmarks/<script>.py``, so this module is
imported by its bare name.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
R_SCRIPT = BENCH_DIR / "lme4_fits.R"
APT_R = "apt-get install -y r-base-core r-cran-lme4"
PIP_STATSMODELS = f"{sys.executable} -m pip install statsmodels"


# ---- statistics ------------------------------------------------------------------------
def median(values) -> float:
    return float(statistics.median(values))


def geomean(values) -> float:
    """Geometric mean: the right average of ratios (a 2x and a 0.5x cancel out)."""
    values = [v for v in values if v and v > 0 and math.isfinite(v)]
    if not values:
        return float("nan")
    return math.exp(sum(math.log(v) for v in values) / len(values))


# ---- installing the peers --------------------------------------------------------------
def _can_apt() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get") is not None


def _lme4_loads() -> bool:
    if shutil.which("Rscript") is None:
        return False
    probe = subprocess.run(["Rscript", "-e", "library(lme4)"], capture_output=True, check=False)
    return probe.returncode == 0


def ensure_lme4() -> str | None:
    """None when Rscript with lme4 is usable, else the reason the R column is skipped.

    Installs Debian's R and lme4 when running as root with apt-get; otherwise
    says which command would.
    """
    if _lme4_loads():
        return None
    if not _can_apt():
        return f"Rscript with lme4 not found; install it with `{APT_R}` (as root) to get the lme4 column"
    print(f"[bench] lme4 missing: running `apt-get update && {APT_R}`", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update"], check=False, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(APT_R.split(), check=False, env=env, stdout=subprocess.DEVNULL)
    return None if _lme4_loads() else f"installing R/lme4 failed; run `{APT_R}` by hand"


def ensure_statsmodels() -> str | None:
    """None when statsmodels imports (installing it with pip if needed), else why not."""
    try:
        import statsmodels  # noqa: F401

        return None
    except ImportError:
        pass
    print(f"[bench] statsmodels missing: running `{PIP_STATSMODELS}`", file=sys.stderr)
    done = subprocess.run(PIP_STATSMODELS.split(), capture_output=True, check=False)
    if done.returncode != 0:
        return f"statsmodels not installed; run `{PIP_STATSMODELS}` to get its column"
    return None


def ensure_python(modules: dict[str, str]) -> None:
    """Import each module or pip-install its package (the package itself: this checkout).

    ``modules`` maps an importable name to the pip argument that provides it.
    """
    import importlib

    for module, requirement in modules.items():
        try:
            importlib.import_module(module)
        except ImportError:
            cmd = [sys.executable, "-m", "pip", "install", *requirement.split()]
            print(f"[bench] {module} missing: running `{' '.join(cmd)}`", file=sys.stderr)
            if subprocess.run(cmd, check=False).returncode != 0:
                sys.exit(f"could not install {module}; run `{' '.join(cmd)}` and try again")
            importlib.invalidate_caches()


BASE_NEEDS = {"mixedmodels": f"-e {REPO_DIR}", "numpy": "numpy", "pandas": "pandas"}


# ---- running lme4 -------------------------------------------------------------------------
JOB_FIELDS = ["name", "csv", "levels", "formula", "kind", "reml", "family", "nagq", "reps"]


def write_tsv(path: Path, fields: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def run_lme4(jobs: list[dict], timeout: float | None = None) -> dict[str, dict]:
    """Run ``lme4_fits.R`` on ``jobs`` (dicts with JOB_FIELDS) in one R process.

    Returns one record per job name: status ("ok" or lme4's error), median_s, min_s, reps, times, feval_stages
    (list of int: evaluations of each optimisation stage), feval_reported
    (what ``m@optinfo$feval`` says) and objective (-2 logLik).
    """
    with tempfile.TemporaryDirectory() as tmp:
        jobs_path, out_path = Path(tmp) / "jobs.tsv", Path(tmp) / "out.tsv"
        write_tsv(jobs_path, JOB_FIELDS, jobs)
        subprocess.run(
            ["Rscript", str(R_SCRIPT), str(jobs_path), str(out_path)], check=True, timeout=timeout
        )
        with open(out_path) as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
    return {row["name"]: _parse_lme4_row(row) for row in rows}


def _parse_lme4_row(row: dict) -> dict:
    if row["status"] != "ok":
        return {"status": "lme4 error: " + row["status"]}
    return {
        "status": "ok",
        "median_s": float(row["median_s"]),
        "min_s": float(row["min_s"]),
        "reps": int(row["reps"]),
        "times": [float(t) for t in row["times"].split(";")],
        "feval_stages": [int(v) for v in row["feval_stages"].split(";")],
        "feval_reported": int(row["feval_reported"]),
        "objective": float(row["objective"]),
    }


def r_versions() -> dict[str, str]:
    """R's and lme4's versions and R's BLAS/LAPACK libraries."""
    code = (
        'cat(R.version.string, as.character(packageVersion("lme4")), '
        'as.character(packageVersion("Matrix")), La_library(), extSoftVersion()[["BLAS"]], sep="\\n")'
    )
    out = subprocess.run(["Rscript", "-e", code], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {}
    r, lme4, matrix, lapack, blas = (out.stdout.splitlines() + [""] * 5)[:5]
    return {
        "R": r,
        "lme4": lme4,
        "Matrix": matrix,
        "R BLAS": blas or "(R's own)",
        "R LAPACK": lapack,
    }


# ---- the machine -----------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def total_ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def numpy_blas() -> str:
    """Name and version of the BLAS numpy is linked to."""
    import numpy as np

    try:
        info = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{info.get('name', '?')} {info.get('version', '')}".strip()
    except (TypeError, KeyError):  # older numpy: no dict mode
        return "unknown"


def package_commit() -> str:
    """Commit of the mixedmodels source being measured (it may be another work tree)."""
    import mixedmodels

    src = Path(mixedmodels.__file__).resolve().parent
    git = ["git", "-C", str(src)]
    out = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "."], capture_output=True, text=True, check=False
    )
    commit = out.stdout.strip() or "unknown"
    return commit + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def machine_description(with_r: bool) -> dict[str, str]:
    """What the timings depend on: CPU, cores, memory, library versions."""
    import numpy as np
    import scipy

    desc = {
        "CPU": cpu_model(),
        "cores": str(os.cpu_count()),
        "RAM": f"{total_ram_gib():.1f} GiB",
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "numpy": f"{np.__version__} ({numpy_blas()})",
        "scipy": scipy.__version__,
        "mixedmodels": package_commit(),
    }
    try:
        import statsmodels

        desc["statsmodels"] = statsmodels.__version__
    except ImportError:
        pass
    if with_r:
        desc.update(r_versions())
    return desc


def load_average() -> str:
    """1-minute load average: other work on the machine skews timings, so we record it."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def busy_cores() -> tuple[float, float]:
    """(busy jiffies of all CPUs, seconds of wall time) now, from /proc/stat."""
    import time

    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK"), time.monotonic()


def own_cpu_seconds() -> float:
    """CPU seconds used by this process and its finished children."""
    import resource

    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class OtherLoad:
    """Average number of cores kept busy by other processes while a block runs.

    On a shared machine a busy neighbour skews timings (multithreaded BLAS most of
    all), so each measurement records it.
    """

    def __enter__(self):
        self.busy0, self.t0 = busy_cores()
        self.own0 = own_cpu_seconds()
        return self

    def __exit__(self, *exc):
        busy1, t1 = busy_cores()
        other = (busy1 - self.busy0) - (own_cpu_seconds() - self.own0)
        self.cores = max(0.0, other / max(t1 - self.t0, 1e-9))
        return False


def wait_for_quiet(limit: float = 0.3, max_wait: float = 600.0) -> float:
    """Wait (at most ``max_wait`` s) until others use under ``limit`` cores; return their last load."""
    import time

    deadline = time.monotonic() + max_wait
    while True:
        with OtherLoad() as load:
            time.sleep(1.0)
        if load.cores < limit or time.monotonic() > deadline:
            return load.cores
        print(
            f"[bench] waiting: other processes keep {load.cores:.1f} cores busy",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(4.0)


def machine_markdown(desc: dict[str, str]) -> str:
    return "\n".join(f"- {key}: {value}" for key, value in desc.items())


def save_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=float) + "\n")
