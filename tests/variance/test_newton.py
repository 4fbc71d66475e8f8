"""The projected Newton optimiser (mixedmodels.variance.newton)."""

import numpy as np
import pytest

from mixedmodels.variance.newton import free_parameters, minimize_bounded


def _quadratic(A, b):
    """f(x) = ½x'Ax - b'x with its gradient and Hessian."""
    return (lambda x: (0.5 * x @ A @ x - b @ x, A @ x - b)), (lambda x: A)


def test_interior_minimum_of_a_quadratic_in_one_step():
    A = np.array([[4.0, 1.0], [1.0, 3.0]])
    b = np.array([1.0, 2.0])
    fg, hess = _quadratic(A, b)
    res = minimize_bounded(fg, hess, np.array([5.0, 5.0]), np.array([-np.inf, 0.0]))
    np.testing.assert_allclose(res.x, np.linalg.solve(A, b), rtol=1e-14)
    assert res.converged and res.free.all() and res.niter <= 2


def test_minimum_on_the_bound_is_exact_and_flagged():
    # Unconstrained minimum at (1, -2); with x2 >= 0 it is (1 - 0.5·0, 0) for this separable A.
    A = np.diag([2.0, 2.0])
    b = np.array([2.0, -4.0])
    fg, hess = _quadratic(A, b)
    res = minimize_bounded(fg, hess, np.array([3.0, 3.0]), np.array([-np.inf, 0.0]))
    np.testing.assert_array_equal(res.x, [1.0, 0.0])
    np.testing.assert_array_equal(res.free, [True, False])
    assert res.grad[1] > 0


def test_nonconvex_function_reaches_its_minimum():
    # Rosenbrock's valley: indefinite Hessian away from the optimum (1, 1).
    def fg(x):
        a, b = x
        f = (1 - a) ** 2 + 100 * (b - a * a) ** 2
        return f, np.array([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)])

    def hess(x):
        a, b = x
        return np.array([[2 - 400 * (b - 3 * a * a), -400 * a], [-400 * a, 200.0]])

    res = minimize_bounded(fg, hess, np.array([-1.2, 1.0]), np.full(2, -np.inf))
    np.testing.assert_allclose(res.x, [1.0, 1.0], rtol=1e-8)


def test_saddle_on_the_bound_is_left():
    # f(s) = s⁴ - s² for s >= 0: s = 0 is stationary (zero gradient) but a maximum along s;
    # a standard deviation's objective behaves like this at zero.  Minimum at s = 1/√2.
    def fg(x):
        s = x[0]
        return s**4 - s**2, np.array([4 * s**3 - 2 * s])

    res = minimize_bounded(
        fg, lambda x: np.array([[12 * x[0] ** 2 - 2]]), np.array([0.0]), np.zeros(1)
    )
    np.testing.assert_allclose(res.x, [1 / np.sqrt(2)], rtol=1e-10)


def test_free_parameters_rule():
    free = free_parameters(np.array([0.0, 0.0, 1.0]), np.array([1.0, -1.0, 1.0]), np.zeros(3))
    np.testing.assert_array_equal(free, [False, True, True])


def test_start_where_the_objective_fails_is_an_error():
    def fg(x):
        raise np.linalg.LinAlgError("not positive definite")

    with pytest.raises(FloatingPointError, match="starting values"):
        minimize_bounded(fg, lambda x: np.eye(1), np.array([1.0]), np.zeros(1))


def test_minimum_approached_from_inside_is_put_on_the_bound():
    # f(s) = s² + s⁴, s >= 0: the gradient vanishes at the bound, iterates only tend to it.
    def fg(x):
        s = x[0]
        return s**2 + s**4, np.array([2 * s + 4 * s**3])

    res = minimize_bounded(
        fg, lambda x: np.array([[2 + 12 * x[0] ** 2]]), np.array([1.0]), np.zeros(1)
    )
    assert res.x[0] == 0.0 and not res.free[0] and res.converged


def test_search_is_recorded_in_an_optsummary_like_the_core_fits():
    A = np.array([[4.0, 1.0], [1.0, 3.0]])
    b = np.array([1.0, 2.0])
    fg, hess = _quadratic(A, b)
    calls = []

    def counted(x):
        calls.append(np.array(x))
        return fg(x)

    start = np.array([5.0, 5.0])
    res = minimize_bounded(counted, hess, start, np.array([-np.inf, 0.0]))
    opt = res.optsum
    assert opt.optimizer == "newton" and opt.fitted
    assert opt.feval == len(calls) == len(opt.fitlog)
    np.testing.assert_array_equal(opt.fitlog[0][0], start)
    assert opt.finitial == pytest.approx(fg(start)[0])
    np.testing.assert_array_equal(opt.final, res.x)
    assert opt.fmin == res.fun == min(f for _, f in opt.fitlog)
    assert opt.returnvalue == "FTOL_REACHED"
    assert opt.to_frame().shape == (len(calls), 3)


def test_iteration_limit_is_the_recorded_reason():
    fg, _ = _quadratic(np.diag([1.0, 1e6]), np.array([1.0, 1.0]))

    def slow_hess(x):
        return np.eye(2)  # a wrong curvature: many short steps

    res = minimize_bounded(fg, slow_hess, np.array([3.0, 3.0]), np.full(2, -np.inf), maxiter=2)
    assert not res.converged
    assert res.optsum.returnvalue == "MAXITER_REACHED"


def test_rounding_noise_at_a_large_objective_does_not_keep_it_stepping():
    # f ≈ 10³ near its minimum carries noise of ~10⁻¹¹ and its gradient more (sums of n³ terms);
    # an absolute decrement test below that noise accepted "improvements" for ever.
    def noise(x):
        return 1e-11 * np.sin(1e9 * x.sum())

    def fg(x):
        return 1e3 + 0.5 * x @ x + noise(x), x + 1e-5 * np.cos(1e9 * x)

    res = minimize_bounded(fg, lambda x: np.eye(2), np.array([1.0, -2.0]), np.full(2, -np.inf))
    assert res.converged and res.optsum.returnvalue == "FTOL_REACHED"
    assert res.optsum.feval < 20
    np.testing.assert_allclose(res.x, 0.0, atol=1e-4)
