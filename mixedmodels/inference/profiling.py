"""Likelihood profiles of a fitted mixed model and the intervals they give.

For each parameter p (a standard deviation, correlation, σ or fixed
effect; see :mod:`.profile_problems`) the profile is traced on a grid of
values v, and reported on the signed square-root scale

    ζ(v) = sign(v - p̂) sqrt(d_p(v) - d(p̂)),

where d_p(v) is the deviance minimised over the other parameters with p = v.
For a parameter whose estimate were normally distributed ζ would be a
straight line with slope 1/se; a 100(1-α)% profile interval is
{v : |ζ(v)| <= z_{1-α/2}}.

The grid, as lme4 builds it: from p̂ in each direction, the next value is
extrapolated from the last two points so that ζ moves by about
``delta``, until |ζ| passes ``cutoff`` or a bound of the parameter is
reached.  Interval ends are read off the inverse of an interpolating
spline of ζ, like lme4's ``confint.thpr``; for the levels asked for when
profiling, the points where ζ = ±z are found exactly (by Brent's method on
the profile itself) and added to the grid, so those intervals carry no
interpolation error.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

__all__ = ["profile", "ProfileResult", "profile_interval"]


class ProfileResult(pd.DataFrame):
    """A tidy profile: one row per point, for every profiled parameter.

    Columns are ``parameter`` (the parameter held fixed), ``zeta`` and the
    value of every parameter at that point.  ``attrs`` holds the estimates
    and bounds.  Use :meth:`confint` for intervals and
    :func:`mixedmodels.plots.zeta_plot` (or :meth:`plot`) for the plot.
    """

    @property
    def _constructor(self):
        return ProfileResult

    @property
    def parameters(self) -> list[str]:
        """The profiled parameters, in the model's order."""
        return list(dict.fromkeys(self["parameter"]))

    def confint(self, level: float = 0.95) -> pd.DataFrame:
        """Profile intervals: columns ``lower`` and ``upper``, one row per parameter."""
        z = _normal_quantile(level)
        bounds = self.attrs["bounds"]
        rows = {}
        for name in self.parameters:
            part = self[self["parameter"] == name]
            lo, hi = bounds[name]
            rows[name] = profile_interval(part[name].to_numpy(), part["zeta"].to_numpy(), z, lo, hi)
        return pd.DataFrame.from_dict(rows, orient="index", columns=["lower", "upper"])

    def plot(self, **kwargs):
        """The zeta plot (matplotlib Figure); see :func:`mixedmodels.plots.zeta_plot`."""
        from ..plots import zeta_plot

        return zeta_plot(self, **kwargs)


def _normal_quantile(level: float) -> float:
    from scipy.stats import norm

    from ..errors import MixedModelsError

    if not 0 < level < 1:
        raise MixedModelsError(f"level must be strictly between 0 and 1, got {level!r}")
    return float(norm.ppf(0.5 + level / 2))


def profile_interval(
    values: np.ndarray, zeta: np.ndarray, z: float, lower: float, upper: float
) -> tuple[float, float]:
    """Where an interpolated profile crosses -z and +z.

    ζ as a function of the parameter is interpolated by a natural cubic
    spline, and its inverse by the cubic Hermite interpolant through the
    same points with reciprocal slopes (lme4's interpSpline/backSpline).
    A non-monotone profile falls back to linear interpolation.  Where the
    profile never reaches ±z (it stopped at a bound), the bound is returned.
    """
    from scipy.interpolate import CubicHermiteSpline, CubicSpline

    order = np.argsort(values)
    v, zt = values[order], zeta[order]
    keep = np.concatenate([[True], np.diff(v) > 0])
    v, zt = v[keep], zt[keep]
    if len(v) < 2:
        return lower, upper
    inverse = lambda target: float(np.interp(target, zt, v))  # noqa: E731
    if len(v) >= 3 and np.all(np.diff(zt) > 0):
        slope = CubicSpline(v, zt, bc_type="natural")(v, 1)
        if np.all(slope > 0):
            inverse = CubicHermiteSpline(zt, v, 1.0 / slope)
    lo = float(inverse(-z)) if zt[0] <= -z else lower
    hi = float(inverse(z)) if zt[-1] >= z else upper
    return lo, hi


def _first_step(problem, j: int, direction: int, delta: float) -> float:
    """The first move from the estimate.

    ``delta`` standard errors for a fixed effect (ζ then moves by about
    delta); for a variance parameter, whose standard error is not at hand, a
    twentieth of its magnitude (sd, σ) or of the room to its bound (cor).
    """
    est = problem.estimate[j]
    if problem.kinds[j] == "beta":
        return delta * problem.scale[j]
    if problem.kinds[j] == "cor":
        room = (problem.upper[j] - est) if direction > 0 else (est - problem.lower[j])
        return 0.05 * max(room, 1e-3)
    return 0.05 * problem.scale[j]


def _zeta(problem, j: int, value: float, dev: float, warned: list) -> float:
    diff = dev - problem.base
    if diff < -1e-6 * max(1.0, abs(problem.base)) and not warned:
        warned.append(True)
        warnings.warn(
            f"profiling {problem.names[j]} found a deviance {-diff:.3g} lower than the fit's; "
            "the fit had not converged: refit with tighter tolerances (optsum) and profile again",
            stacklevel=4,
        )
    return math.copysign(math.sqrt(max(diff, 0.0)), value - problem.estimate[j])


def _fix_checked(
    problem, j: int, value: float, last: tuple, delta: float
) -> tuple[float, np.ndarray]:
    """The profile at ``value`` from the last point; retried from the estimate if ζ jumps.

    The conditional optimum from a warm start is usually right, but the
    optimiser can stop at a worse point (a bound, say).  A ζ that moved by
    more than three times the target step or backwards is re-optimised from
    the estimate and the lower deviance kept.
    """
    dev, row = problem.fix(j, value, last[1])
    moved = abs(
        math.copysign(math.sqrt(max(dev - problem.base, 0.0)), value - problem.estimate[j])
        - last[0]
    )
    if moved > 3 * delta or abs(dev - problem.base) < last[0] ** 2 - 1e-9:
        dev2, row2 = problem.fix(j, value, problem.estimate)
        if dev2 < dev:
            return dev2, row2
    return dev, row


def _walk(
    problem, j: int, direction: int, cutoff: float, delta: float, maxpts: int, warned: list
) -> list:
    """Profile points of parameter j from the estimate in one direction: [(zeta, row), ...]."""
    est, lo, hi = problem.estimate[j], problem.lower[j], problem.upper[j]
    points = [(0.0, problem.estimate.copy())]
    if (direction < 0 and est <= lo) or (direction > 0 and est >= hi):
        return points
    step = _first_step(problem, j, direction, delta)
    while len(points) < maxpts:
        value = float(np.clip(points[-1][1][j] + direction * step, lo, hi))
        dev, row = _fix_checked(problem, j, value, points[-1], delta)
        points.append((_zeta(problem, j, value, dev, warned), row))
        (z0, r0), (z1, r1) = points[-2], points[-1]
        moved = abs(r1[j] - r0[j])
        if abs(z1) >= cutoff or value in (lo, hi) or moved == 0:
            break
        rise = abs(z1 - z0)
        # the secant step that moves zeta by delta, at most 10 times the last move
        step = min(delta * moved / rise, 10 * moved) if rise > 0 else 2 * moved
    return points


def _crossings(problem, j: int, points: list, targets: list[float], warned: list) -> list:
    """Exact profile points where ζ equals each target inside the walked range.

    The bracketing grid points keep their recorded ζ (a re-optimisation from
    another start could differ in the last digits and lose the bracket); if
    the root search fails all the same, the interval end is left to the
    spline through the grid.
    """
    from scipy.optimize import brentq

    extra = []
    for target in targets:
        for (z0, r0), (z1, r1) in zip(points, points[1:]):
            if (z0 - target) * (z1 - target) >= 0:
                continue
            known = {r0[j]: z0 - target, r1[j]: z1 - target}
            found = {}

            def gap(v: float, known=known, found=found, r0=r0, target=target) -> float:
                if v in known:
                    return known[v]
                dev, found[v] = problem.fix(j, v, r0)
                return _zeta(problem, j, v, dev, warned) - target

            tol = 1e-9 * max(abs(r0[j]), abs(r1[j]), 1e-3)
            try:
                root = brentq(gap, min(r0[j], r1[j]), max(r0[j], r1[j]), xtol=tol)
            except (ValueError, RuntimeError):
                continue
            if root not in known:
                extra.append(
                    (target, found[root] if root in found else problem.fix(j, root, r0)[1])
                )
    return extra


def _repair(problem, j: int, points: list, warned: list, passes: int = 3) -> list:
    """Make |ζ| non-decreasing away from the estimate by re-optimising from farther points.

    A point whose |ζ| exceeds that of a point farther out was left at a
    local optimum (typically a correlation whose standard deviation should
    be 0, where the deviance no longer depends on it).  It is re-optimised
    from the farther point's parameters and the lower deviance kept, which
    can only bring the profile closer to the true minimum.
    """
    for _ in range(passes):
        changed = False
        for k in range(len(points) - 2, 0, -1):
            (zk, rk), (zf, rf) = points[k], points[k + 1]
            if abs(zk) <= abs(zf) + 1e-8:
                continue
            dev, row = problem.fix(j, rk[j], rf)
            z = _zeta(problem, j, rk[j], dev, warned)
            if abs(z) < abs(zk) - 1e-10:
                points[k], changed = (z, row), True
        if not changed:
            break
    return points


def profile(
    model,
    which: list[str] | None = None,
    *,
    levels=(0.95,),
    alphamax: float = 0.01,
    maxpts: int = 100,
    delta: float | None = None,
    progress: bool | str = "auto",
) -> ProfileResult:
    """Profile the deviance of a fitted model over its parameters.

    Parameters
    ----------
    model : LinearMixedModel or GeneralizedLinearMixedModel
        A fitted model (a REML fit is profiled by maximum likelihood, as in lme4).
    which : list of str, optional
        Parameter names (``sd_...``, ``cor_...``, ``sigma``, coefficient
        names); all by default.
    levels : sequence of float
        Confidence levels whose interval ends are located exactly.
    alphamax : float
        The profiles extend to |ζ| = sqrt(χ²_{1-alphamax}(number of parameters)).
    maxpts : int
        At most this many points per direction.
    delta : float, optional
        Target step in ζ (default: the cutoff / 8).
    progress : bool or "auto"
        Show a progress bar (one tick per parameter; "auto": on a terminal or notebook for long runs).

    Returns
    -------
    ProfileResult
        A DataFrame with columns ``parameter``, ``zeta`` and one per parameter.
    """
    from scipy.stats import chi2

    from .profile_problems import profile_problem

    problem = profile_problem(model)
    chosen = _chosen(problem.names, which)
    cutoff = math.sqrt(chi2.ppf(1 - alphamax, len(problem.names)))
    delta = cutoff / 8 if delta is None else delta
    targets = [s * _normal_quantile(level) for level in levels for s in (-1, 1)]
    frames, warned = [], []
    for j in _progress(chosen, progress, problem.names):
        down, up = (
            _repair(problem, j, _walk(problem, j, d, cutoff, delta, maxpts, warned), warned)
            for d in (-1, 1)
        )
        points = down[::-1] + up[1:]
        points += _crossings(problem, j, points, targets, warned)
        frames.append(_frame(problem, j, sorted(points, key=lambda p: p[1][j])))
    out = ProfileResult(pd.concat(frames, ignore_index=True))
    out.attrs.update(
        estimates=dict(zip(problem.names, problem.estimate.tolist())),
        bounds={
            n: (float(problem.lower[j]), float(problem.upper[j]))
            for j, n in enumerate(problem.names)
        },
        kinds=dict(zip(problem.names, problem.kinds)),
        deviance=problem.base,
    )
    return out


def _chosen(names: list[str], which: list[str] | None) -> list[int]:
    from ..errors import MixedModelsError

    if which is None:
        return list(range(len(names)))
    which = [which] if isinstance(which, str) else list(which)
    unknown = [w for w in which if w not in names]
    if unknown:
        raise MixedModelsError(
            f"unknown parameter(s) {unknown}; the model's parameters are {names}"
        )
    return [names.index(w) for w in which]


def _progress(indices: list[int], enabled: bool | str, names: list[str]):
    from ..progress import progress_bar

    with progress_bar(progress=enabled, total=len(indices), desc="profile", unit=" par") as bar:
        for j in indices:
            bar.set_postfix_str(names[j], refresh=True)
            yield j
            bar.update(1)


def _frame(problem, j: int, points: list) -> pd.DataFrame:
    rows = np.array([row for _, row in points])
    df = pd.DataFrame(rows, columns=problem.names)
    df.insert(0, "zeta", [z for z, _ in points])
    df.insert(0, "parameter", problem.names[j])
    return df
