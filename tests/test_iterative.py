"""Iterative methods (gd, precgd): accuracy targets, masks, optax, starts, statuses, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import (
    ITERATIVE_DEFAULTS,
    best_rank_k_residual,
    directional_fd,
    eps,
    gram,
    isolve,
    jsolve,
    nearest_psd_ref,
    rel_error,
    rel_residual,
    symmetric_mask,
)

import jaxsolve
from jaxsolve import Status, scaled_gradient, solve

N = 8
C_PD = jaxsolve.random_psd(N, cond=10, seed=1)


@pytest.mark.parametrize("method", ["gd", "precgd"])
def test_pd_matches_reference(method):
    sol = isolve(C_PD, method)
    assert int(sol.status) == Status.SUCCESS
    assert 0 < int(sol.steps) < {"gd": 5000, "precgd": 200}[method]
    assert rel_error(gram(sol.X), C_PD) < 1e-10
    np.testing.assert_allclose(float(sol.residual), rel_residual(sol.X, C_PD), rtol=1e-6)


def test_defaults_used_by_helpers_are_solves_defaults():
    """isolve spells the defaults out (for compile sharing): they must be solve's own."""
    from jaxsolve._iterative import DEFAULT_MAX_STEPS, PRECGD_LEARNING_RATE

    assert {m: d["max_steps"] for m, d in ITERATIVE_DEFAULTS.items()} == DEFAULT_MAX_STEPS
    assert ITERATIVE_DEFAULTS["precgd"]["learning_rate"] == PRECGD_LEARNING_RATE


# --- precgd accuracy targets -----------------------------------------------------------------


@pytest.mark.parametrize("cond", [1e1, 1e4, 1e8])
def test_precgd_full_rank_any_condition_number(cond):
    C = jaxsolve.random_psd(64, cond=cond, seed=3)
    sol = isolve(C, "precgd")
    assert int(sol.status) == Status.SUCCESS
    assert int(sol.steps) <= 30
    assert float(sol.residual) <= 1e-10
    assert rel_residual(sol.X, C) <= 1e-10


@pytest.mark.parametrize("cond", [1e1, 1e4, 1e8, 1e12])
def test_precgd_newton_phase_takes_few_steps(cond):
    """Full rank, PSD: the determinant-scaled Newton phase needs ≤ 12 steps at any κ; the
    damped step alone (an explicit sgd(0.5) skips the Newton phase) needs more."""
    C = jaxsolve.random_psd(64, cond=cond, seed=4)
    sol = isolve(C, "precgd")
    damped = isolve(C, "precgd", optimizer=SGD_HALF)
    assert int(sol.status) == int(damped.status) == Status.SUCCESS
    assert int(sol.steps) <= 12
    if cond >= 1e4:
        assert int(sol.steps) < int(damped.steps)
    assert rel_residual(sol.X, C) <= 1e-13


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_precgd_full_rank_singular_psd(dtype):
    """Half the eigenvalues exactly 0: the Newton phase converges linearly along them (or
    hands over to the damped loop) and still ends at the answer."""
    C = jaxsolve.random_psd(48, rank=24, cond=1e3, seed=6).astype(dtype)
    sol = isolve(C, "precgd")
    assert int(sol.status) == Status.SUCCESS
    assert int(sol.steps) <= 60
    assert rel_residual(sol.X, C) <= (1e-12 if dtype == np.float64 else 2e-5)


def test_precgd_batch_of_mixed_inputs_equals_single_solves():
    """PSD, singular, indefinite and non-finite matrices in one batch: the Newton phase
    runs per matrix (where each one's PSD check passes) and no matrix affects another."""
    n = 12
    batch = np.stack(
        [
            jaxsolve.random_psd(n, cond=1e6, seed=1),
            jaxsolve.random_psd(n, rank=5, cond=10, seed=2),
            jaxsolve.random_psd(n, negative=3, cond=10, seed=3),
            np.where(np.eye(n) > 0, np.nan, 1.0),
            np.zeros((n, n)),
        ]
    )
    together = isolve(batch, "precgd")
    for i, C in enumerate(batch):
        alone = isolve(C, "precgd")
        assert int(together.status[i]) == int(alone.status), i
        if i != 1:  # (along exactly singular directions rounding decides the last steps)
            assert int(together.steps[i]) == int(alone.steps), i
        if int(alone.status) != Status.NON_FINITE_INPUT:
            np.testing.assert_allclose(
                gram(together.X[i]), gram(alone.X), atol=1e-12 * max(1.0, np.abs(C).max())
            )
    assert [int(s) for s in together.status] == [
        Status.SUCCESS,
        Status.SUCCESS,
        Status.NOT_PSD,
        Status.NON_FINITE_INPUT,
        Status.SUCCESS,
    ]


def _tiny_mixed_batch(n, dtype):
    """PSD, singular, indefinite, PSD within tolerance (eigenvalues just below 0),
    non-finite and zero matrices of size n."""
    tol = 10 * n * eps(dtype)
    Q, _ = np.linalg.qr(np.random.default_rng(n).standard_normal((n, n)))
    lam = np.geomspace(1, 1e-2, n)
    lam[n // 2 :] = -0.5 * tol
    cond = 1e6 if dtype == np.float64 else 1e3
    return np.stack(
        [
            jaxsolve.random_psd(n, cond=cond, seed=1),
            jaxsolve.random_psd(n, rank=n // 2, cond=10, seed=2),
            jaxsolve.random_psd(n, negative=1, cond=10, seed=3),
            (Q * lam) @ Q.T,
            np.where(np.eye(n) > 0, np.nan, 1.0),
            np.zeros((n, n)),
        ]
    ).astype(dtype)


@pytest.mark.parametrize("n, dtype", [(1, np.float32), (8, np.float64)])
def test_precgd_batch_of_tiny_matrices_equals_single_solves(n, dtype):
    """A batch of tiny matrices (the Newton phase and the loop under vmap) gives what each
    matrix alone gives: statuses, the products, steps within one (rounding) where C is not
    singular."""
    batch = _tiny_mixed_batch(n, dtype)
    together = isolve(batch, "precgd")
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for i, C in enumerate(batch):
        alone = isolve(C, "precgd")
        assert int(together.status[i]) == int(alone.status), i
        if int(alone.status) == Status.NON_FINITE_INPUT:
            continue
        if i not in (1, 3):  # (along (nearly) singular directions rounding decides the last steps)
            assert abs(int(together.steps[i]) - int(alone.steps)) <= 1, i
        scale = max(1.0, float(np.abs(C).max()))
        np.testing.assert_allclose(gram(together.X[i]), gram(alone.X), atol=tol * scale)
        if int(alone.status) == Status.SUCCESS:
            assert rel_residual(together.X[i], C) <= (1e-12 if dtype == np.float64 else 2e-5)
    expected = [Status.SUCCESS, Status.SUCCESS, Status.NOT_PSD, Status.SUCCESS]
    if n == 1:  # (1×1: its one eigenvalue is the one just below 0, with nothing above it)
        expected[3] = Status.NOT_PSD
    assert [int(s) for s in together.status[:4]] == expected
    assert int(together.status[4]) == Status.NON_FINITE_INPUT


def test_precgd_tiny_batch_forward_derivative():
    """jvp through a batched solve of tiny matrices: at convergence d(X·Xᵀ) = dC. (jax.vmap
    over solve of 8×8: test_solve.test_vmap_equals_python_loop.)"""
    n = 4
    batch = jnp.asarray(jaxsolve.random_psd(n, cond=100, batch=(5,), seed=9))
    D = np.random.default_rng(3).standard_normal((5, n, n))
    D = jnp.asarray(D + np.swapaxes(D, -1, -2))
    W = jnp.asarray(np.random.default_rng(4).standard_normal((n, n)))

    def loss(c):
        X = solve(c, method="precgd").X
        return jnp.sum(W * (X @ jnp.swapaxes(X, -1, -2)), axis=(-2, -1))

    _, tangent = jax.jit(lambda c, d: jax.jvp(loss, (c,), (d,)))(batch, D)
    np.testing.assert_allclose(
        tangent, np.sum(np.asarray(W) * np.asarray(D), axis=(-2, -1)), rtol=1e-6
    )


@pytest.mark.parametrize("n", [8, 200])
def test_smallest_eigenvalue_bound_brackets_lambda_min(n):
    """From above, and within 2× after 3 inverse iterations; vmap equals single calls."""
    from jaxsolve._newton import smallest_eigenvalue_bound

    C = jaxsolve.random_psd(n, cond=1e4, batch=(3,), seed=n)
    lam_min = np.linalg.eigvalsh(C)[:, 0]
    L = np.linalg.cholesky(C)
    one = [float(smallest_eigenvalue_bound(jnp.asarray(l))) for l in L]
    assert np.all(one >= lam_min * (1 - 1e-9)) and np.all(one <= 2 * lam_min)
    stacked = jax.vmap(smallest_eigenvalue_bound)(jnp.asarray(L))
    np.testing.assert_allclose(stacked, one, rtol=1e-8)


def test_precgd_newton_phase_hands_over_on_slightly_negative_float32():
    """float32, PSD within the check's tolerance but half the eigenvalues just below zero:
    Newton's iteration is chaotic along them; the phase must notice and hand over."""
    n = 50
    tol = 10 * n * eps(np.float32)
    Q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((n, n)))
    lam = np.geomspace(1, 1e-3, n)
    lam[n // 2 :] = -0.5 * tol
    C = ((Q * lam) @ Q.T).astype(np.float32)
    sol = isolve(C, "precgd")
    assert int(sol.status) == Status.SUCCESS and int(sol.steps) <= 20
    assert rel_error(gram(sol.X), nearest_psd_ref(C)) < 1e-6


@pytest.mark.parametrize("n", [8, 160])
def test_precgd_first_newton_step_is_the_closed_form(n):
    """From the default start α·I the first Newton step is ½·(g·I + C/g), g the 2N-th root of
    the determinant of C + tol·λ_max·I (the PSD check's factor), computed here in NumPy;
    the full solve converges."""
    C = jaxsolve.random_psd(n, cond=1e6, seed=n)
    shifted = C + (10 * n * eps(np.float64) * np.linalg.eigvalsh(C)[-1]) * np.eye(n)
    g = np.exp(np.linalg.slogdet(shifted)[1] / (2 * n))
    first = isolve(C, "precgd", max_steps=1)
    want = 0.5 * (g * np.eye(n) + C / g)
    np.testing.assert_allclose(first.X, want, rtol=0, atol=1e-10 * np.abs(want).max())
    sol = isolve(C, "precgd")
    assert int(sol.status) == Status.SUCCESS
    np.testing.assert_allclose(gram(sol.X), C, rtol=0, atol=1e-13 * np.abs(C).max())


@pytest.mark.parametrize("cond", [1e1, 1e4, 1e8, 1e16])
@pytest.mark.parametrize("rank", [None, "half"])
def test_identity_start_newton_scaling_follows_the_scalar_iteration(cond, rank):
    """The identity start's iterates are functions of C: on a diagonal C the Newton phase
    is the scalar iteration on each eigenvalue, whose step count with the optimal scaling
    of the true range is computed here in NumPy; the solver, which only has estimates of
    λ_min and λ_max, takes at most one step more (and far fewer than the determinant
    scaling of a general start at large κ). On a singular C the zero eigenvalues' directions
    shrink to the rounding floor instead of converging, and the damped loop finishes:
    there the test asks for the target's 30 steps."""
    n = 200
    k = n if rank is None else n // 2
    lam = np.zeros(n)
    lam[:k] = np.geomspace(1.0, 1.0 / cond, k)
    C = jaxsolve.random_psd(n, cond=cond, rank=k, seed=3)
    sol = isolve(C, "precgd")
    assert int(sol.status) == Status.SUCCESS
    assert rel_residual(sol.X, C) <= 1e-13
    if rank is not None:
        assert int(sol.steps) <= 30
        return
    tol = np.sqrt(10 * np.sqrt(n) * eps(np.float64))
    shifted = lam + 10 * n * eps(np.float64) * lam.max()  # the PSD check factors C + tol·I
    g = np.exp(0.5 * np.sum(np.log(shifted)) / n)
    x = 0.5 * (g + lam / g)
    u = 0.5 * (g / np.sqrt(shifted) + np.sqrt(shifted) / g)
    low, high = u.min(), u.max()
    steps = 1
    while True:
        mu = 1 / np.sqrt(low * high) if high > 1.01 * low else 1.0
        new = 0.5 * (mu * x + lam / (mu * x))
        u = 0.5 * (mu * u + 1 / (mu * u))
        low, high = u.min(), u.max()
        change = np.linalg.norm(new - x) / np.linalg.norm(new)
        x, steps = new, steps + 1
        if change <= tol:
            break
    assert int(sol.steps) <= steps + 1, (int(sol.steps), steps)


@pytest.mark.parametrize("n, k", [(30, 3), (200, 8)])
def test_product_change_norm_factored_equals_dense(n, k):
    from jaxsolve._iterative import product_change_norm

    rng = np.random.default_rng(n)
    X = rng.standard_normal((n, k))
    for step in (
        rng.standard_normal((n, k)),
        X @ np.array(np.triu(rng.standard_normal((k, k)), 1) * 1e-3),
    ):
        step = jnp.asarray(step)
        dense = product_change_norm(step, jnp.asarray(X), False)
        factored = product_change_norm(step, jnp.asarray(X), True)
        ref = np.linalg.norm(np.asarray(step) @ X.T + X @ np.asarray(step).T)
        np.testing.assert_allclose(dense, ref, rtol=1e-12)
        # exact to about sqrt(eps)·‖step‖·‖X‖ (the traces cancel for a rotating step)
        bound = 1e-7 * np.linalg.norm(step) * np.linalg.norm(X)
        assert abs(float(factored) - ref) <= 1e-12 * ref + bound


def test_precgd_learning_rate_other_than_half_skips_the_newton_phase():
    C = jaxsolve.random_psd(16, cond=1e4, seed=8)
    given = isolve(C, "precgd", learning_rate=0.25)
    chained = isolve(C, "precgd", optimizer=optax.sgd(0.25))
    assert int(given.steps) == int(chained.steps) > int(isolve(C, "precgd").steps)


def test_precgd_newton_phase_counts_towards_max_steps():
    C = jaxsolve.random_psd(32, cond=1e8, seed=2)
    for cap in (0, 1, 2, 3):
        sol = isolve(C, "precgd", max_steps=cap)
        assert int(sol.status) == Status.MAX_STEPS and int(sol.steps) == cap, cap


def test_precgd_low_rank_n200():
    Y = np.random.default_rng(7).standard_normal((200, 8)) * np.geomspace(1, 1e-3, 8)
    C = Y @ Y.T  # exactly rank 8, κ of the nonzero part ~1e6
    sol = isolve(C, "precgd", rank=8)
    assert sol.X.shape == (200, 8)
    assert int(sol.status) == Status.SUCCESS
    assert int(sol.steps) <= 30
    assert rel_residual(sol.X, C) <= 1e-10


@pytest.mark.parametrize("cond", [1e1, 1e4])
def test_precgd_float32(cond):
    C = jaxsolve.random_psd(64, cond=cond, seed=3).astype(np.float32)
    sol = isolve(C, "precgd")
    assert sol.X.dtype == jnp.float32
    assert int(sol.status) == Status.SUCCESS
    assert int(sol.steps) <= 30
    assert rel_residual(sol.X, C) <= 1e-5 and float(sol.residual) <= 1e-5


def test_precgd_indefinite_matches_eigh():
    C = jaxsolve.random_psd(64, cond=1e2, negative=4, seed=5)
    sol = isolve(C, "precgd")
    ref = solve(C, method="eigh")
    assert int(sol.status) == int(ref.status) == Status.NOT_PSD
    np.testing.assert_allclose(float(sol.residual), float(ref.residual), rtol=1e-8)
    assert rel_error(gram(sol.X), nearest_psd_ref(C)) < 1e-6


def test_precgd_rank_k_reaches_eckart_young():
    C = jaxsolve.random_psd(N, cond=100, seed=6)
    sol = isolve(C, "precgd", rank=3)
    assert sol.X.shape == (N, 3)
    assert int(sol.status) == Status.SUCCESS
    np.testing.assert_allclose(float(sol.residual), best_rank_k_residual(C, 3), rtol=1e-8)


# --- masks -----------------------------------------------------------------------------------

Y_MASK = np.random.default_rng(8).standard_normal((60, 3))
C_MASK = Y_MASK @ Y_MASK.T
MASK = symmetric_mask(60, 0.4, seed=8)


def test_mask_completion_recovers_unobserved_entries():
    assert 0.3 < MASK.mean() < 0.5
    # 40% observed needs ~650 steps (the default max_steps=200 stops at MAX_STEPS, 1e-5)
    sol = isolve(np.where(MASK, C_MASK, 0.0), "precgd", mask=MASK, rank=3, max_steps=2000)
    assert int(sol.status) == Status.SUCCESS
    E = gram(sol.X)
    unobserved = ~MASK
    err = np.linalg.norm((E - C_MASK)[unobserved]) / np.linalg.norm(C_MASK[unobserved])
    assert err <= 1e-6
    assert float(sol.residual) <= 1e-8
    # the residual is on the observed entries only: garbage there does not count
    garbage = np.where(MASK, C_MASK, 1e3)
    sol2 = isolve(garbage, "precgd", mask=MASK, rank=3, max_steps=2000)
    np.testing.assert_allclose(gram(sol2.X), E, atol=1e-8)


def test_auto_with_mask_is_gauss_newton():
    C = np.where(MASK, C_MASK, 0.0)
    auto = jsolve(C, method="auto", mask=MASK, rank=3, max_steps=200)
    gn = isolve(C, "gauss_newton", mask=MASK, rank=3)
    assert int(auto.status) == Status.SUCCESS and int(auto.steps) == int(gn.steps) > 0
    np.testing.assert_allclose(np.asarray(auto.X), np.asarray(gn.X), atol=1e-12)


def test_gauss_newton_refuses_what_it_does_not_take():
    with pytest.raises(ValueError, match="mask"):
        solve(C_PD, method="gauss_newton")
    for option in (dict(learning_rate=0.5), dict(optimizer=optax.sgd(0.1))):
        with pytest.raises(ValueError, match="gauss_newton"):
            solve(C_PD, method="gauss_newton", mask=np.ones((N, N)), **option)


@pytest.mark.parametrize(
    "mask",
    [
        np.ones((N, N - 1)),
        np.ones((2, N, N)),
        np.ones(N),
        -np.ones((N, N)),
        np.full((N, N), np.nan),
    ],
    ids=["wrong-shape", "extra-batch", "1d", "negative", "nan"],
)
def test_bad_mask_raises(mask):
    with pytest.raises(ValueError, match="mask"):
        solve(C_PD, method="precgd", mask=mask)


@pytest.mark.parametrize("method", ["cholesky", "eigh", "sqrt"])
def test_mask_with_closed_form_raises(method):
    with pytest.raises(ValueError, match="mask"):
        solve(C_PD, method=method, mask=np.ones((N, N), bool))


# --- optax -----------------------------------------------------------------------------------

ADAM = optax.adam(1e-2)
SGD = optax.sgd(0.1)
SGD_HALF = optax.sgd(0.5)


@pytest.mark.parametrize("optimizer", [ADAM, SGD], ids=["adam", "sgd"])
def test_gd_with_optax_optimizer(optimizer):
    sol = isolve(C_PD, "gd", optimizer=optimizer)
    assert int(sol.status) == Status.SUCCESS
    assert rel_error(gram(sol.X), C_PD) < 1e-8
    default = isolve(C_PD, "gd")
    assert int(sol.steps) != int(default.steps)  # the optimizer was used


def test_precgd_with_optimizer_after_preconditioner():
    """precgd's optimizer replaces the step after the preconditioner: sgd(0.5) is the
    default damped step (without the Newton phase of a default full-rank solve), so it
    reaches the default's product, in more steps."""
    sol = isolve(C_PD, "precgd", optimizer=SGD_HALF)
    default = isolve(C_PD, "precgd")
    assert int(sol.status) == int(default.status) == Status.SUCCESS
    assert int(default.steps) < int(sol.steps)
    np.testing.assert_allclose(
        np.asarray(sol.X @ sol.X.T), np.asarray(default.X @ default.X.T), atol=1e-12
    )


def test_scaled_gradient_update_formula():
    rng = np.random.default_rng(9)
    X, G = rng.standard_normal((N, 3)), rng.standard_normal((N, 3))
    tx = scaled_gradient(damping=0.3, residual_weight=0.5)
    state = tx.init(jnp.asarray(X))
    updates, _ = tx.update(jnp.asarray(G), state, jnp.asarray(X), residual_norm=0.4)
    expected = G @ np.linalg.inv(X.T @ X + (0.3 + 0.5 * 0.4) * np.eye(3))
    np.testing.assert_allclose(np.asarray(updates), expected, rtol=1e-10)
    with pytest.raises(ValueError, match="params"):
        tx.update(jnp.asarray(G), state)


def test_scaled_gradient_composes_in_hand_written_loop():
    """ScaledGD via optax.chain, outside solve: condition-number-free convergence."""
    C = jnp.asarray(jaxsolve.random_psd(N, cond=1e6, seed=10))
    tx = optax.chain(scaled_gradient(), optax.sgd(0.5))

    @jax.jit
    def step(X, state):
        grad = (X @ X.T - C) @ X
        updates, state = tx.update(grad, state, X)
        return optax.apply_updates(X, updates), state

    X = jnp.sqrt(jnp.linalg.eigvalsh(C)[-1]) * jnp.eye(N)
    state = tx.init(X)
    for _ in range(60):
        X, state = step(X, state)
    assert rel_residual(X, C) < 1e-10


# --- starts: x0 and key ----------------------------------------------------------------------


def test_x0_is_the_start():
    x0 = np.random.default_rng(11).standard_normal((N, N))
    at_start = isolve(C_PD, "gd", x0=x0, max_steps=0)
    np.testing.assert_array_equal(np.asarray(at_start.X), x0)
    assert int(at_start.status) == Status.MAX_STEPS and int(at_start.steps) == 0
    exact = np.asarray(solve(C_PD, method="eigh").X)
    converged = isolve(C_PD, "gd", x0=exact)
    assert int(converged.status) == Status.SUCCESS and int(converged.steps) == 0
    near = isolve(C_PD, "gd", x0=exact + 1e-3 * x0)
    assert int(near.status) == Status.SUCCESS and rel_error(gram(near.X), C_PD) < 1e-10


def test_key_changes_the_start_not_the_answer():
    k1, k2 = jax.random.PRNGKey(1), jax.random.PRNGKey(2)
    s1 = isolve(C_PD, "gd", key=k1, max_steps=0)
    s2 = isolve(C_PD, "gd", key=k2, max_steps=0)
    again = isolve(C_PD, "gd", key=k1, max_steps=0)
    assert np.abs(np.asarray(s1.X) - np.asarray(s2.X)).max() > 1e-3
    np.testing.assert_array_equal(np.asarray(again.X), np.asarray(s1.X))
    f1, f2 = isolve(C_PD, "gd", key=k1), isolve(C_PD, "gd", key=k2)
    assert int(f1.status) == int(f2.status) == Status.SUCCESS
    np.testing.assert_allclose(gram(f1.X), gram(f2.X), atol=1e-10)


# --- statuses --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["gd", "precgd"])
def test_max_steps(method):
    sol = isolve(C_PD, method, max_steps=1)
    assert int(sol.status) == Status.MAX_STEPS and int(sol.steps) == 1
    assert "MAX_STEPS" in sol.messages()[0]


@pytest.mark.parametrize("method", ["gd", "precgd"])
def test_steps_never_exceed_max_steps(method):
    """A stop for stationarity applies its last (negligible) step, except at the cap."""
    C = jaxsolve.random_psd(8, negative=2, cond=10, seed=1)  # ends on stationarity, not atol
    full = isolve(C, method)
    assert int(full.status) == Status.NOT_PSD
    for cap in range(int(full.steps) - 3, int(full.steps) + 2):
        sol = isolve(C, method, max_steps=cap)
        assert int(sol.steps) <= cap, (cap, int(sol.steps))


@pytest.mark.parametrize("learning_rate", [10.0, 1e3, 1e8])
def test_huge_learning_rate_is_reported(learning_rate):
    sol = isolve(C_PD, "gd", learning_rate=learning_rate)
    assert int(sol.status) in (Status.DIVERGED, Status.NON_FINITE)
    assert np.all(np.isfinite(np.asarray(sol.X)))  # the last finite iterate


def test_never_success_with_nan():
    for lr in (1e2, 1e300):
        sol = isolve(100 * C_PD, "gd", learning_rate=lr)
        ok = np.asarray(sol.status) == Status.SUCCESS
        assert not ok or np.all(np.isfinite(np.asarray(sol.X)))


# (gradients of iterative solves: tests/test_implicit.py)


def test_gd_float32_success_means_converged():
    # plain GD's gradient is tiny along the small directions of an ill-conditioned X long
    # before X is near the answer: a stop for stationarity is confirmed by precgd's step
    C = jaxsolve.random_psd(N, cond=100, seed=1).astype(np.float32)
    sol = isolve(C, "gd")
    if int(sol.status) == Status.SUCCESS:
        assert float(sol.residual) <= 1e-5
    else:
        assert int(sol.status) == Status.MAX_STEPS


def test_weighted_mask_residual_is_measured_with_the_weights():
    rng = np.random.default_rng(21)
    A = rng.standard_normal((12, 2))
    C = A @ A.T
    W = rng.random((12, 12)) + 0.5
    W = W + W.T
    sol = jaxsolve.solve(C, mask=W, rank=2, max_steps=1000)
    X = np.asarray(sol.X)
    expected = np.linalg.norm(W * (X @ X.T - C)) / np.linalg.norm(W * C)
    np.testing.assert_allclose(float(sol.residual), expected, rtol=1e-6, atol=1e-14)
    assert float(sol.residual) < 1e-10


def test_lanczos_extremes_lie_inside_the_spectrum_and_close_to_its_ends():
    from jaxsolve._spectral import lanczos_extremes

    for seed in range(3):
        C = jaxsolve.random_psd(40, cond=50.0, negative=3, seed=seed)
        lam = np.linalg.eigvalsh(C)
        low, high = (float(x) for x in lanczos_extremes(jnp.asarray(C)))
        assert lam[0] * (1 + 1e-12) <= low and high <= lam[-1] * (1 + 1e-12)
        assert low <= 0.99 * lam[0] and high >= 0.99 * lam[-1]
    # breakdowns: the Krylov space of a multiple of the identity is one vector, of a rank-2
    # matrix three; the estimates stay inside the spectrum and find its ends
    for C in (3 * np.eye(40), jaxsolve.random_psd(40, rank=2, seed=1)):
        lam = np.linalg.eigvalsh(C)
        low, high = (float(x) for x in lanczos_extremes(jnp.asarray(C)))
        np.testing.assert_allclose([low, high], [lam[0], lam[-1]], atol=1e-12 * lam[-1])


def test_precgd_low_rank_reports_large_negative_eigenvalue_from_the_sketch():
    # eigenvalues 1 … 0.1 (5 of them), then -0.5: the sketch's Ritz values see it
    Q = np.linalg.qr(np.random.default_rng(4).standard_normal((120, 6)))[0]
    lam = np.array([1.0, 0.6, 0.4, 0.2, 0.1, -0.5])
    C = (Q * lam) @ Q.T
    sol = isolve(C, "precgd", rank=3)
    ref = jaxsolve.solve(C, method="eigh", rank=3)
    assert int(sol.status) == int(ref.status) == Status.NOT_PSD
    np.testing.assert_allclose(float(sol.residual), float(ref.residual), rtol=1e-8)
    psd = isolve((Q[:, :5] * lam[:5]) @ Q[:, :5].T, "precgd", rank=3)
    assert int(psd.status) == Status.SUCCESS


# --- big batches in chunks (batch_size) ----------------------------------------------------


def _mixed_batch(n, count, seed=0):
    rng = np.random.default_rng(seed)
    C = np.stack([jaxsolve.random_psd(n, cond=10.0 ** (i % 5), seed=i) for i in range(count)])
    C[1] = C[1] - 2 * np.eye(n) * np.abs(C[1]).max()  # indefinite
    C[2, 0, 1] = np.nan
    C[4] = C[4] + 0.1 * rng.standard_normal((n, n))  # not symmetric
    return C


@pytest.mark.parametrize("method", ["precgd", "gd"])
def test_chunked_batch_equals_whole_batch(method):
    """7 matrices in chunks of 3 (batch_size) give what one vmapped batch gives, status,
    steps and X·Xᵀ, with a mask and an x0 passed through the chunks too."""
    n, count = 4, 7
    C = _mixed_batch(n, count)
    mask = np.ones((count, n, n))
    mask[:, 0, 3] = mask[:, 3, 0] = 0
    options = dict(method=method, mask=mask, x0=np.tile(np.eye(n), (count, 1, 1)), max_steps=3000)
    whole = jaxsolve.solve(C, **options)
    chunked = jaxsolve.solve(C, batch_size=3, **options)
    np.testing.assert_array_equal(np.asarray(chunked.status), np.asarray(whole.status))
    np.testing.assert_array_equal(np.asarray(chunked.steps), np.asarray(whole.steps))
    finite = np.isfinite(np.asarray(whole.residual))
    assert finite.sum() == count - 1 and not np.isfinite(np.asarray(chunked.residual)[2])
    np.testing.assert_allclose(gram(chunked.X)[finite], gram(whole.X)[finite], atol=1e-12)
    np.testing.assert_allclose(
        np.asarray(chunked.residual)[finite], np.asarray(whole.residual)[finite], atol=1e-14
    )


def test_gradient_finite_where_the_solve_converges_exactly():
    """A solve that reaches a residual of exactly 0 (4·I): the derivative of its norm must
    be 0, not ∞·0 = NaN. Checked against finite differences, and through the chunked batch
    path too."""
    n = 3
    C = np.stack([jaxsolve.random_psd(n, cond=10.0, seed=0), 4 * np.eye(n)])
    C = np.concatenate([C, jaxsolve.random_psd(n, cond=10.0, seed=4)[None]])

    def loss(C, batch_size=None):
        sol = jaxsolve.solve(C, method="precgd", batch_size=batch_size)
        X = sol.X
        return jnp.sum(jnp.sin(X @ jnp.swapaxes(X, -1, -2))), sol.residual

    value_and_grad = jax.jit(jax.value_and_grad(loss, has_aux=True))
    (_, residual), whole = value_and_grad(C)
    assert float(residual[1]) == 0.0 and np.all(np.isfinite(np.asarray(whole)))
    D = np.random.default_rng(5).standard_normal(C.shape)
    D = D + np.swapaxes(D, -1, -2)
    fd = directional_fd(lambda c: value_and_grad(c)[0][0], C, D, h=1e-6)
    np.testing.assert_allclose(np.sum(np.asarray(whole) * D), fd, rtol=1e-6)
    chunked = np.asarray(jax.jit(jax.grad(lambda c: loss(c, 2)[0]))(C))
    np.testing.assert_allclose(chunked, whole, rtol=1e-10, atol=1e-12)
