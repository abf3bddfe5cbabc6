"""``solve``: validate -> guard non-finite input -> method -> residual + status."""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from ._checks import (
    as_float_array,
    as_square_matrices,
    check_choice,
    check_int,
    check_key,
    check_rank,
    default_tol,
)
from ._closed_form import (
    CLOSED_FORMS,
    auto_factor_batch,
    first_factor,
    sqrt_of_norm_sq,
    starts_with_batched_eigh,
    symmetric_part,
    weighted_symmetric_part,
)
from ._iterative import ITERATIVE_METHODS, IterOptions, iterative_factor
from ._sequence import after
from ._solution import Solution, Status, worst_status

METHODS = (*CLOSED_FORMS, *ITERATIVE_METHODS)
PRECISIONS = ("highest", "high", "default")
_DEFAULT_MAX_STEPS = {"gd": 5000, "precgd": 1000}

ITERATIVE_OPTIONS = (
    "optimizer",
    "x0",
    "key",
    "rtol",
    "atol",
    "max_steps",
    "learning_rate",
    "fixed_steps",
)
"""The options of :func:`solve` that only the iterative methods take (a ValueError for a
closed form; :func:`compare` passes them to the iterative methods only)."""


def relative_residual(X: jax.Array, C: jax.Array, weights: jax.Array | None = None) -> jax.Array:
    """‖X·Xᵀ − C‖_F / ‖C‖_F over the last two axes (absolute where ‖C‖_F = 0); with
    ``weights`` M (C given already multiplied by M) the masked ‖M∘(X·Xᵀ) − C‖ / ‖C‖."""
    XXt = X @ jnp.swapaxes(X, -1, -2)
    if weights is not None:
        XXt = weights * XXt
    err = jnp.linalg.norm(XXt - C, axis=(-2, -1))
    norm = jnp.linalg.norm(C, axis=(-2, -1))
    return jnp.where(norm > 0, err / jnp.where(norm > 0, norm, 1.0), err)


def _symmetry_status(skew_sq: jax.Array, norm_sq: jax.Array, n: int) -> jax.Array:
    """NOT_SYMMETRIC where ‖C − (C + Cᵀ)/2‖² is beyond rounding of ‖C‖², else SUCCESS."""
    tol = default_tol(n, norm_sq.dtype)
    return jnp.where(skew_sq > tol**2 * norm_sq, Status.NOT_SYMMETRIC, Status.SUCCESS)


# Above this N a single matrix is first probed for symmetry (one product of C with a thin
# constant block, no transposed pass over C); smaller ones and batches symmetrise directly.
_PROBE_MIN_N = 64
_PROBE_PAIRS = 4


def _same_width_int(dtype: Any) -> Any:
    """The signed integer type as wide as the float ``dtype`` (for reading its bits)."""
    return jnp.dtype(f"int{jnp.dtype(dtype).itemsize * 8}")


def largest_magnitude(A: jax.Array, axis: Any = None) -> jax.Array:
    """max |a| (over ``axis``; all entries by default), NaN if an entry is NaN: the scale
    and the finiteness check at once, as ONE integer reduction. With the sign bit cleared,
    the bits of a float order as its magnitude, +Inf above every finite value and every
    NaN above +Inf (a float max may skip NaN on CPU). One reduction where a max and a
    Σ 0·a (NaN exactly when an entry is NaN or ±Inf) took two. A constant for
    differentiation (its derivative is 0), as the scale and the check it serves are."""
    int_type = _same_width_int(A.dtype)
    magnitude_bits = lax.bitcast_convert_type(A, int_type) & jnp.iinfo(int_type).max
    return lax.bitcast_convert_type(jnp.max(magnitude_bits, axis=axis), A.dtype)


def power_of_two_scale(magnitude: jax.Array) -> jax.Array:
    """h = 2^(−⌊e/2⌋) for magnitude = f·2^e, 1 ≤ f < 2 (1 where it is 0 or not finite).

    Multiplying C by h·h (exact: a power of two) brings its largest entries into [1, 4),
    so that the sums of squares behind norms, residuals and checks can neither overflow nor
    underflow, whatever C's scale; X of the scaled problem divided by h is X of C, bit for
    bit where nothing under- or overflows. Read off the exponent bits (no log, no pow: a
    batch of many small matrices computes one per matrix). A constant for
    differentiation."""
    info = jnp.finfo(magnitude.dtype)
    mantissa = info.nmant
    bias = info.maxexp - 1
    int_type = _same_width_int(magnitude.dtype)
    usable = jnp.isfinite(magnitude) & (magnitude > 0)
    bits = lax.bitcast_convert_type(jnp.where(usable, magnitude, 1.0), int_type)
    exponent = (bits >> mantissa) - bias  # subnormals read as the smallest exponent
    # floor(e/2), kept 8 short of the exponent range so that h², h²/2 stay normal numbers
    # (CPU flushes subnormals to zero) for entries near the largest float
    limit = (info.maxexp - 1) // 2 - 8
    half = jnp.clip(exponent >> 1, -limit, limit)
    h = lax.bitcast_convert_type((bias - half) << mantissa, magnitude.dtype)
    return lax.stop_gradient(h)


def _looks_symmetric(C: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Randomised test that C is finite and ‖C − Cᵀ‖ is at rounding level (then taken as
    0), with the scale h (:func:`power_of_two_scale`), from ONE pass over C: P = C·[U, V]
    with constant Gaussian U, V (N×m each) gives both Uᵀ·C·V and (Vᵀ·C·U)ᵀ = Uᵀ·Cᵀ·V,
    whose difference D = 2·Uᵀ·K·V for the skew part K = (C − Cᵀ)/2, with
    E‖Uᵀ·K·V‖² = m²·‖K‖²; E‖P‖² = 2m·‖C‖² gives the scale. The squares are taken of
    P·h², whose entries are near 1.

    The threshold is tol/16. A skew part at the tolerance itself passes undetected with
    probability below 1e-6 (simulated for the worst case, a rank-2 K and a rank-1 C: 0 in
    2·10⁶ draws); rounding noise measures below 0.03·N·eps, twenty times under the
    threshold (float32 and float64, N = 64…2048, κ up to 1e12); and a "no" only sends C to
    the exact checks, so that side is never wrong."""
    n, m = C.shape[-1], _PROBE_PAIRS
    # a constant of the compiled program (no random-number generation at run time)
    W = np.random.default_rng(0x5E77).standard_normal((n, 2 * m)).astype(C.dtype)  # [U, V]
    hp = lax.Precision.HIGHEST
    P = jnp.matmul(C, W, precision=hp)
    # NaN/Inf in C reach P (W has no zeros): the scale is then 1 and the test False.
    P_max = largest_magnitude(P)
    h = power_of_two_scale(P_max)
    P = P * (h * h)
    G = jnp.matmul(W.T, P, precision=hp)  # [U, V]ᵀ·C·[U, V]·h²: one small product
    D = G[:m, m:] - G[m:, :m].T
    skew_sq = jnp.sum(D * D) / (4 * m * m)  # estimates ‖K‖²
    scale_sq = jnp.sum(P * P) / (2 * m)  # estimates ‖C‖²
    tol = default_tol(n, C.dtype) / 16
    passed = jnp.isfinite(P_max + skew_sq + scale_sq) & (skew_sq <= tol**2 * scale_sq)
    return passed, h


@jax.custom_jvp
def _as_symmetric(C: jax.Array) -> jax.Array:
    """C, found symmetric to rounding, used as its own symmetric part: the value is C (no
    transposed pass), the derivative that of (C + Cᵀ)/2, as on the exact path."""
    return C


@_as_symmetric.defjvp
def _as_symmetric_jvp(primals, tangents):
    (C,), (dC,) = primals, tangents
    return C, symmetric_part(dC)


class Checks(NamedTuple):
    """What ``solve`` checks of each matrix before a method runs (shape (...) each)."""

    finite: jax.Array  # no NaN/Inf entry
    skew_sq: jax.Array  # ‖C − (C + Cᵀ)/2‖² in units of C·h²
    norm_sq: jax.Array  # ‖C‖² in units of C·h²; NaN where not measured (the probe)
    h: jax.Array  # power_of_two_scale: C·h² has its largest entries near 1


def _reduce_matrices(*terms: tuple[str, jax.Array]) -> tuple[jax.Array, ...]:
    """``max`` or ``sum`` over the last two axes of each ``(kind, array)`` in ``terms``, as
    ONE variadic ``lax.reduce`` (one pass): the exact checks' sums of squares, and the
    one-pass checks. Measured in session 8: the exact checks with their passes variadic
    took 0.36–0.38 ms against 0.48–0.51 ms as single reductions (10,000 8×8 and 2,000
    16×16 float64, 31 rounds)."""
    ops = tuple(jnp.maximum if kind == "max" else jnp.add for kind, _ in terms)
    arrays = tuple(a for _, a in terms)
    init = tuple(jnp.asarray(-jnp.inf if k == "max" else 0, a.dtype) for k, a in terms)
    axes = (arrays[0].ndim - 2, arrays[0].ndim - 1)

    def combine(x, y):
        return tuple(f(a, b) for f, a, b in zip(ops, x, y, strict=True))

    return tuple(lax.reduce(arrays, init, combine, axes))


def exact_checks(C: jax.Array) -> Checks:
    """:class:`Checks` of each matrix of C (..., N, N), exactly, in two passes: the largest
    magnitudes (the scale h), then the sums of squares of C·h² and of its skew part, which
    can neither overflow nor underflow for finite C, so that a NaN or ±Inf entry shows as a
    non-finite ‖C‖² (a max alone may skip a NaN on CPU; h is 1 for a non-finite max).

    Not one pass with a rare rescaling pass under ``lax.cond``: a conditional anywhere in
    the program made jaxlib's batched LAPACK calls after it up to 2× slower (10,000 2×2
    eigh: 1.8× → 1.3× ``jnp.linalg.eigh``; 100,000 3×3: 1.28× → 1.08×), far more than the
    second pass costs. Nor a separate NaN test (Σ 0·c) in the first pass: one more
    reduction, and XLA:CPU materialised its zeros (2,000 16×16 Cholesky: 5.3 → 3.8 ms)."""
    # a lone max (a max may skip a NaN on CPU: the sums below catch it). The variadic
    # (max |c|, Σ c) that stood here compiled to this too: XLA drops an unused output.
    largest = jnp.max(jnp.abs(C), axis=(-2, -1))
    h = power_of_two_scale(largest)
    Cs = C * (h * h)[..., None, None]
    skew = Cs - jnp.swapaxes(Cs, -1, -2)
    # the ¼ applied to the sum: inside, XLA:CPU materialises the constant as a whole array
    skew_sq, norm_sq = _reduce_matrices(("sum", skew * skew), ("sum", Cs * Cs))
    return Checks(jnp.isfinite(norm_sq), skew_sq * 0.25, norm_sq, h)


def finite_symmetric_part(C: jax.Array) -> jax.Array:
    """(C + Cᵀ)/2 of each matrix of C (..., N, N) as given, unscaled, with non-finite
    entries read as 0 (their matrices are reported as non-finite input): what a batch
    factored first factors. Halved first, so it cannot overflow."""
    finite_entries = jnp.where(jnp.isfinite(C), C, 0.0)
    return 0.5 * finite_entries + 0.5 * jnp.swapaxes(finite_entries, -1, -2)


def one_pass_checks(C: jax.Array) -> tuple[Checks, jax.Array]:
    """(:class:`Checks`, usable) of each matrix of C (..., N, N) from ONE pass over C
    (max |c|, ‖C‖², ‖C − Cᵀ‖² of C as it is, then scaled by h⁴: exact), and whether they
    are exact: for largest entries in :func:`_unscaled_range`, where those sums can neither
    overflow nor lose what matters by underflow, and for non-finite C (a NaN or ±Inf entry
    makes ‖C‖² non-finite there; a max may skip a NaN on CPU, the sum does not). Elsewhere
    (a rare, extreme scale) use :func:`exact_checks`.

    The skew part is read as C − Cᵀ, not as C − S from the symmetric part S already
    factored (no transposed read): that made the batched eigh after which it runs
    1.2–1.7× slower (10,000 8×8 and 5×5, float64 and float32)."""
    skew = C - jnp.swapaxes(C, -1, -2)
    largest, norm_sq, skew_sq = _reduce_matrices(
        ("max", jnp.abs(C)), ("sum", C * C), ("sum", skew * skew)
    )
    h = power_of_two_scale(largest)
    h4 = (h * h) * (h * h)
    usable = _unscaled_range(h) | ~jnp.isfinite(largest)
    checks = Checks(jnp.isfinite(norm_sq), skew_sq * h4 * 0.25, norm_sq * h4, h)
    return checks, usable


class _Prepared(NamedTuple):
    """One matrix made ready for a method: the checks, and S in units of C·h² (X of C is X
    of S divided by h)."""

    S: jax.Array  # the symmetric target (identity where C is not finite)
    W: jax.Array | None  # symmetric weights M∘M of a mask, or None
    checks: Checks


def _prepare(C: jax.Array, checks: Checks | None, iterative: bool = False) -> _Prepared:
    """One matrix → S = (C + Cᵀ)/2 (the identity where C has NaN/Inf, so that every method
    runs on something harmless), with its checks.

    ``checks`` are :func:`exact_checks`, computed for the whole batch beforehand; None for a
    large single matrix, which a randomised probe checks first: a C that it finds finite
    and symmetric to rounding skips the exact checks (a pass and a transposed pass over C);
    its ‖C‖² is then NaN, "not measured", and the residual takes the norm from the
    factorisation; an iterative method then uses C itself as S rather than a transposed
    pass. For a closed form S is left as an expression: XLA fuses it (scale included) into
    the column-major copy that LAPACK's factorisations make of their input anyway, as
    ``jnp.linalg`` does with its own symmetrisation."""
    n = C.shape[-1]

    def symmetrised(finite, h):
        # scaled first: C + Cᵀ itself overflows for entries near the largest float
        return jnp.where(finite, symmetric_part(C * (h * h)), jnp.eye(n, dtype=C.dtype))

    if checks is not None:
        return _Prepared(symmetrised(checks.finite, checks.h), None, checks)
    fast, h_probe = _looks_symmetric(C)
    checks = lax.cond(
        fast,
        lambda: Checks(
            jnp.asarray(True), jnp.zeros((), C.dtype), jnp.full((), jnp.nan, C.dtype), h_probe
        ),
        lambda: exact_checks(C),
    )
    if iterative:  # S is read many times: C itself if symmetric, no transposed pass
        h = checks.h
        S = lax.cond(fast, lambda: _as_symmetric(C) * (h * h), lambda: symmetrised(True, h))
    else:
        S = symmetrised(checks.finite, checks.h)
    return _Prepared(S, None, checks)


def _prepare_masked(C: jax.Array, M: jax.Array) -> _Prepared:
    """One masked matrix (C already 0 where M is) → the equivalent symmetric problem
    (:func:`weighted_symmetric_part` with W = M∘M); what no symmetric matrix can fit of the
    observed entries, Σ W∘(C − S)², is the skew part the status reports."""
    largest = largest_magnitude(C)
    finite = jnp.isfinite(largest)
    h = power_of_two_scale(largest)
    Cs = jnp.where(finite, C * h * h, 0.0)
    # weights relative to the largest: a uniform weight is the same problem as none, and
    # the steps (sized from S's spectrum) stay what they are without a mask
    W = M * M
    W = W / jnp.maximum(jnp.max(W), jnp.finfo(W.dtype).tiny)
    S, W_sym = weighted_symmetric_part(Cs, W)
    skew_sq = jnp.sum(W * (Cs - S) ** 2)
    norm_sq = jnp.sum(W * Cs * Cs)
    return _Prepared(S, W_sym, Checks(finite, skew_sq, norm_sq, h))


def _unmeasured_residual(lost, total, skew_sq, norm_sq):
    """‖X·Xᵀ − C‖/‖C‖ from the decomposition, all in the scaled units of the checks:
    ‖C‖² = ‖S‖² + ‖K‖² and ‖S − X·Xᵀ‖ = lost, so no N×N product. ``norm_sq`` NaN (not
    measured) → ‖S‖ = total, from the eigenvalues."""
    err_sq = lost**2 + skew_sq
    norm_sq = jnp.where(jnp.isnan(norm_sq), total**2 + skew_sq, norm_sq)
    ratio = err_sq / jnp.where(norm_sq > 0, norm_sq, 1.0)
    return sqrt_of_norm_sq(jnp.where(norm_sq > 0, ratio, err_sq))


class _Config(NamedTuple):
    """The static options of one ``solve`` call, as the per-matrix pipeline needs them."""

    method: str
    rank: int
    probe: bool
    measure_residual: bool
    optimizer: optax.GradientTransformation | None
    opts: IterOptions | None
    fixed_steps: bool


def _factor(cfg: _Config, S, w, x0, key):
    """The method on one symmetrised S → (X, status, steps, lost, total); the last two
    norms from the decomposition (closed forms) or None (iterative)."""
    if cfg.method in CLOSED_FORMS:
        X, status, lost, total = CLOSED_FORMS[cfg.method](S, cfg.rank)
        return X, status, jnp.zeros((), jnp.int32), lost, total
    X, status, steps = iterative_factor(
        S,
        w,
        x0,
        key,
        method=cfg.method,
        rank=cfg.rank,
        optimizer=cfg.optimizer,
        opts=cfg.opts,
        fixed_steps=cfg.fixed_steps,
        precision=None,
    )
    return X, status, steps, None, None


def _solve_one(cfg: _Config, c, m, x0, key, checks) -> Solution:
    """One matrix C (and mask M, and its exact checks unless probed): factor, residual,
    status."""
    if m is None:
        prep = _prepare(c, checks, iterative=cfg.method in ITERATIVE_METHODS)
    else:
        prep = _prepare_masked(c, m)
    ck = prep.checks
    x0 = None if x0 is None else x0 * ck.h
    X, status, steps, lost, total = _factor(cfg, prep.S, prep.W, x0, key)
    return _finish(cfg, c, m, ck, X, status, steps, lost, total)


def _finish(cfg: _Config, c, m, ck: Checks, X, status, steps, lost, total) -> Solution:
    """One matrix's Solution from the factor X of its scaled problem (C·h²) and the
    method's status, steps and norms (lost, total: scaled units; None if not known):
    residual, the checks' statuses, X of C."""
    n, h, h2 = c.shape[-1], ck.h, ck.h * ck.h
    if m is not None:
        residual = relative_residual(X, m * c * h2, weights=m)
    elif cfg.measure_residual or lost is None:
        residual = relative_residual(X, c * h2)
    else:
        residual = _unmeasured_residual(lost, total, ck.skew_sq, ck.norm_sq)
    status = worst_status(_symmetry_status(ck.skew_sq, ck.norm_sq, n), status)
    status = jnp.where(ck.finite, status, Status.NON_FINITE_INPUT).astype(jnp.int32)
    X = jnp.where(ck.finite, X / h, jnp.nan)  # fuses with the factor's own last pass
    residual = jnp.where(ck.finite, residual, jnp.nan)
    return Solution(X, residual, status, jnp.where(ck.finite, steps, 0))


def _unscaled_range(h: jax.Array) -> jax.Array:
    """Whether C, with the scale h of :func:`power_of_two_scale` (largest entry within a
    factor 4 of h⁻²), can be factored as it is, with results as exact as those of C·h²:
    largest entries in [2^−e/4, 2^(e/4 + 2)) (e the exponent range: 8.6e−78 to 4.6e77 in
    float64, 2.3e−10 to 1.7e10 in float32), where neither the eigenvalues nor the squares
    behind the decomposition's norms (up to N³·max², down to (eps·min)²) leave the normal
    range."""
    quarter = (jnp.finfo(h.dtype).maxexp // 4) // 2  # h² = 2^(−2·⌊e/2⌋)
    h_small, h_large = 2.0 ** (-quarter), 2.0**quarter
    return (h >= h_small) & (h <= h_large)


def _finish_batch(cfg: _Config, C: jax.Array, checks: Checks):
    """``(X, status, lost, total) ↦ Solution`` for the closed-form factors of a batch C in
    the units of its ``checks``."""

    def finish(X, status, lost, total):
        steps = jnp.zeros(status.shape, jnp.int32)
        return jax.vmap(functools.partial(_finish, cfg, m=None))(
            C, ck=checks, X=X, status=status, steps=steps, lost=lost, total=total
        )

    return finish


def _solve_checked_batch(cfg: _Config, C: jax.Array, checks: Checks) -> Solution:
    """A batch C (b, N, N) of closed-form solves, checked first (``checks``: its
    :func:`exact_checks`), then factored in units of C·h² and finished."""

    def make_S():
        return jax.vmap(lambda c, ck: _prepare(c, ck).S)(C, checks)

    finish = _finish_batch(cfg, C, checks)
    if cfg.method == "auto":
        return auto_factor_batch(make_S, cfg.rank, then=finish)
    return finish(*jax.vmap(CLOSED_FORMS[cfg.method], in_axes=(0, None))(make_S(), cfg.rank))


def _solve_closed_batch(cfg: _Config, C: jax.Array) -> Solution:
    """A batch C (b, N, N) of closed-form solves. Checked first (:func:`exact_checks`),
    unless it starts with a batched eigendecomposition (:func:`starts_with_batched_eigh`):
    then that comes FIRST in the program and the checks after it. A ``where`` guards
    non-finite entries (0 instead), the factor runs on C's symmetric part as given,
    unscaled, and its X and norms are expressed in the units of the checks (C·h², h a power
    of two: exact) and finished as on the checked path. The batch is solved again, checked
    first, under ``lax.cond`` (under a further ``vmap`` a select: both run) if a matrix is
    outside :func:`_unscaled_range` (a rare, extreme scale).

    Why: jaxlib's CPU LAPACK kernels before 0.11 split a batched call over XLA's intra-op
    thread pool, but only when the call starts on the thread that runs the program; after
    the checks' reductions (multithreaded kernels) XLA continues on a pool thread, and the
    same call then runs on one core. Factoring first brought 10,000 8×8 float64
    ``solve(method="eigh")`` from 1.0× to 0.5–0.8× NumPy's stacked eigh on two cores.
    Batched Cholesky factors (and auto, which starts with them) measured slower that way:
    2,000 16×16 float64 took 2.1 ms factored first against 1.5 ms checked first
    (``jnp.linalg.cholesky`` 1.0 ms), 1,000 32×32 4.8 against 2.9 ms; the unrolled
    Cholesky of tiny matrices too (5×5: 0.64 → 0.85× NumPy)."""
    n = C.shape[-1]
    if not starts_with_batched_eigh(cfg.method, n, cfg.rank):
        return _solve_checked_batch(cfg, C, exact_checks(C))
    S = finite_symmetric_part(C)
    first = first_factor(cfg.method, n, cfg.rank)
    X, status, lost, total = jax.vmap(CLOSED_FORMS[first], in_axes=(0, None))(S, cfg.rank)
    checks, usable = one_pass_checks(after(C, X))
    h2 = checks.h * checks.h

    def factored_first():  # X of C·h² and its norms: exact
        finish = _finish_batch(cfg, C, checks)
        return finish(X * checks.h[:, None, None], status, lost * h2, total * h2)

    def checked():  # after the first factor: under vmap both branches run (_sequence)
        C_after = after(C, X)
        return _solve_checked_batch(cfg, C_after, exact_checks(C_after))

    return lax.cond(jnp.all(usable), factored_first, checked)


# Iterative solves of big batches run in chunks of about this many matrix entries (see
# _over_matrices).
_CHUNK_ENTRIES = 2**17


def _chunk_size(n: int) -> int:
    """The most matrices per chunk of a big batch of N×N iterative solves (at least 1)."""
    return max(1, _CHUNK_ENTRIES // max(n * n, 1))


def _in_chunks(fn, flat_args, most: int):
    """``vmap(fn)`` over the flattened batch as ``lax.map`` over equal chunks of at most
    ``most`` matrices. A batch that does not split evenly is padded with copies of its
    first matrix (fewer than one per chunk; their results are dropped): ``lax.map``'s own
    remainder, a second vmapped program, measured 1.7× slower than equal chunks."""
    count = flat_args[0].shape[0]
    chunks = -(-count // most)
    size = -(-count // chunks)
    pad = chunks * size - count

    def padded(x):
        return jnp.concatenate([x, jnp.broadcast_to(x[:1], (pad, *x.shape[1:]))]) if pad else x

    args = jax.tree.map(padded, flat_args)
    out = lax.map(lambda a: fn(*a), args, batch_size=size)
    return jax.tree.map(lambda x: x[:count], out)


def _over_matrices(fn, *flat_args, chunk: int | None = None):
    """``vmap(fn)`` over the flattened batch, or a direct call for a single matrix, so that
    ``lax.cond`` inside (the symmetry probe, auto's Cholesky fallback, the iterative loop's
    occasional exact residual) really skips the branch not taken instead of becoming a
    ``select``.

    ``chunk``: on CPU, a batch of more than ``chunk`` matrices runs as a sequence of
    vmapped chunks (``lax.map`` with ``batch_size``; other platforms take the batch whole).
    An iterative solve keeps about a dozen batch-sized arrays alive; above 32 MiB, glibc
    serves XLA:CPU's temporary buffer by a fresh ``mmap`` on every call, and touching its
    pages first costs more than the arithmetic: 10,000 8×8 precgd solves (55 MB of
    temporaries) took 60 ms whole and 26 ms in five chunks of 2,000 (11 MB), measured in
    one process. Each chunk's loop also stops at its own slowest matrix."""
    count = flat_args[0].shape[0]
    if count == 1:
        single = fn(*(None if a is None else jax.tree.map(lambda x: x[0], a) for a in flat_args))
        return jax.tree.map(lambda x: x[None], single)
    if chunk is None or count <= chunk:
        return jax.vmap(fn)(*flat_args)

    return lax.platform_dependent(
        *flat_args, cpu=lambda *a: _in_chunks(fn, a, chunk), default=jax.vmap(fn)
    )


def check_mask(mask: Any, shape: tuple[int, ...]) -> jax.Array:
    """The mask as float weights of C's shape (or broadcastable to it); ValueError if negative."""
    W = as_float_array(mask, "mask")
    if W.ndim < 2 or W.shape[-2:] != shape[-2:] or jnp.broadcast_shapes(W.shape, shape) != shape:
        raise ValueError(
            f"mask must have the shape of C, {shape} (or broadcast to it); got {W.shape}"
        )
    if not isinstance(W, jax.core.Tracer) and bool(jnp.any(W < 0) | ~jnp.all(jnp.isfinite(W))):
        raise ValueError(
            "mask must hold booleans or finite non-negative weights; got negative "
            "or non-finite entries"
        )
    return jnp.broadcast_to(W, shape)


def _iter_options(dtype, n, rtol, atol, max_steps, learning_rate, method, fixed_steps):
    eps = float(jnp.finfo(dtype).eps)
    if max_steps is None:
        max_steps = _DEFAULT_MAX_STEPS[method]
    if fixed_steps or not isinstance(max_steps, jax.Array):
        max_steps = check_int(max_steps, "max_steps", low=0)
    elif not isinstance(max_steps, jax.core.Tracer) and int(max_steps) < 0:
        # (a traced cap, for a sweep without recompiling, is taken as given)
        raise ValueError(f"max_steps must be an int >= 0; got {int(max_steps)}")
    if learning_rate is None:
        learning_rate = 0.5 if method == "precgd" else math.nan
    return IterOptions(
        rtol=jnp.asarray(10 * math.sqrt(max(n, 1)) * eps if rtol is None else rtol, dtype),
        atol=jnp.asarray(4 * math.sqrt(max(n, 1)) * eps if atol is None else atol, dtype),
        max_steps=max_steps if fixed_steps else jnp.asarray(max_steps, jnp.int32),
        learning_rate=jnp.asarray(learning_rate, dtype),
    )


def solve(
    C: jax.typing.ArrayLike,
    *,
    method: str = "auto",
    rank: int | None = None,
    mask: jax.typing.ArrayLike | None = None,
    optimizer: optax.GradientTransformation | None = None,
    x0: jax.typing.ArrayLike | None = None,
    key: jax.Array | None = None,
    rtol: float | jax.Array | None = None,
    atol: float | jax.Array | None = None,
    max_steps: int | jax.Array | None = None,
    learning_rate: float | jax.Array | None = None,
    fixed_steps: bool = False,
    precision: str = "highest",
    measure_residual: bool = False,
) -> Solution:
    """Find X with X·Xᵀ ≈ C.

    Args:
        C: array of shape ``(..., N, N)``; any leading batch dimensions. Integers are
            promoted to the default float dtype. A non-symmetric C is solved for its
            symmetric part (C + Cᵀ)/2 (status NOT_SYMMETRIC); an indefinite one for the
            nearest PSD matrix (status NOT_PSD) by every method but Cholesky.
        method: static.

            - ``"cholesky"``: lower-triangular L, L·Lᵀ = C; CHOLESKY_FAILED unless PD.
            - ``"eigh"``: X = V·sqrt(max(Λ, 0)), largest eigenvalues first.
            - ``"sqrt"``: the symmetric PSD root V·sqrt(Λ₊)·Vᵀ.
            - ``"gd"``: gradient descent on f(X) = ¼‖M∘(X·Xᵀ − C)‖²_F with ``optimizer``
              (default: plain GD, step 1/(3·λ_max) from a power-iteration (rank N) or Lanczos
              (rank < N) estimate, random start).
            - ``"precgd"``: the step g·(XᵀX + δI)⁻¹ (ScaledGD with PrecGD damping,
              :func:`jaxsolve.scaled_gradient`), step 0.5 (with rank < N and no mask, a full
              step outside the column space of X), spectral start; its step count does not
              grow with the condition number. Full rank on PSD input, without a mask or
              ``optimizer`` and at the default learning rate ½: first the undamped step
              computed as ½·(X + C·X⁻ᵀ) (one LU; Newton's polar iteration, scaled: from
              the default start by the tracked spread of singular values, 5–8 steps for
              κ = 10…1e16; from a given ``x0`` by determinant scaling of its first steps),
              then the damped loop if anything is left. Not with ``fixed_steps`` (the
              damped loop only). Its scaled first steps overshoot before they converge:
              capped at 1–3 steps (``max_steps``), X·Xᵀ can be farther from C than the
              start was.
            - ``"auto"``: Cholesky where it succeeds, else eigh; precgd when a mask is given.
              On a batch, the eigendecompositions run only if a Cholesky factor failed
              (then for the whole batch, the failed ones taken from them).
        rank: static. Number of columns k of X (default N). ``eigh`` keeps the top-k
            eigenpairs, the Frobenius-optimal rank-k factor; ``cholesky`` needs k = N. The
            iterative methods never form more than N×N and cost O(N²k) a step.
        mask: boolean or non-negative weights of C's shape: only those entries count (PSD
            matrix completion); unobserved entries may be anything, NaN included.
            Iterative methods only; the residual is then measured on the masked entries,
            ‖M∘(X·Xᵀ − C)‖/‖M∘C‖.
        optimizer: static. An optax ``GradientTransformation`` for ``"gd"`` (and, after the
            preconditioner, for ``"precgd"``) that replaces the default step.
        x0: initial factor, shape ``(..., N, k)``. key: PRNG key for the random or
            sketched start (default ``PRNGKey(0)``).
        rtol, atol: stop when the relative residual is <= atol, or a step changes X by
            at most rtol·‖X‖ while ‖∇f‖ <= rtol·‖C‖·‖X‖ (defaults 10·sqrt(N)·eps and
            4·sqrt(N)·eps); precgd's Newton phase ends after a step that changed X by at
            most sqrt(rtol) relative. Iterative methods only (a ValueError for a closed
            form), like ``optimizer``, ``x0``, ``key``, ``max_steps``, ``learning_rate``
            and ``fixed_steps``.
        max_steps: iteration cap (default 5000 for gd, 1000 for precgd; Newton steps
            count).
        learning_rate: step size; for gd absolute (default 1/(3·λ_max)), for precgd the
            fraction of the preconditioned step (default 0.5).
        fixed_steps: static. Run exactly ``max_steps`` steps with ``fori_loop`` so that
            ``jax.grad`` can differentiate through the solve (after convergence X keeps
            taking its negligible steps, so the derivative converges with it; the start
            and the spectral estimates are constants for differentiation); ``max_steps``
            must then be a Python int. The default ``while_loop`` is forward-differentiable
            only.
        precision: static. Matmul precision ("highest" default: float32 matmuls stay
            float32 on GPU/TPU instead of TF32/bfloat16, so the residual targets hold).
        measure_residual: static; closed forms only (the iterative methods always measure).
            By default a closed form's residual comes from its decomposition: ‖C − S‖ for
            the non-symmetric part, the clipped and dropped eigenvalues for eigh/sqrt, 0
            for a successful Cholesky. That is ‖X·Xᵀ − C‖ in exact arithmetic; the
            rounding error of the computed X (about N·eps relative) is left out, and the
            call costs no more than the factorisation. True forms X·Xᵀ and measures it
            (an N×N×k matmul: 2-7× a Cholesky's time at large N).

    Returns:
        :class:`Solution` with ``X`` of shape ``(..., N, k)``, ``residual`` =
        ‖X·Xᵀ − C‖_F/‖C‖_F (see ``measure_residual``), ``status`` (:class:`Status` codes)
        and ``steps``, each per matrix.

    Statuses: SUCCESS, NOT_SYMMETRIC, NOT_PSD, CHOLESKY_FAILED, MAX_STEPS, DIVERGED,
    NON_FINITE, NON_FINITE_INPUT (that matrix's X and residual are NaN; the rest of the
    batch is unaffected).

    Differentiable w.r.t. C: ``"sqrt"`` has a derivative that stays finite at repeated
    eigenvalues, ``"eigh"`` follows JAX's ``eigh`` derivative (NaN at repeated
    eigenvalues), ``"cholesky"`` is smooth where C is positive definite, and the iterative
    methods with ``fixed_steps=True``. X is unique only up to an orthogonal factor:
    differentiate functions of X·Xᵀ.

    >>> sol = jaxsolve.solve(jnp.array([[4.0, 2.0], [2.0, 3.0]]))  # doctest: +SKIP
    >>> sol.X @ sol.X.T, sol.status                                 # doctest: +SKIP
    """
    method = check_choice(method, "method", METHODS)
    precision = check_choice(precision, "precision", PRECISIONS)
    C = as_square_matrices(C, "C")
    n = C.shape[-1]
    k = check_rank(rank, n)
    W = None if mask is None else check_mask(mask, C.shape)
    if method == "auto" and W is not None:
        method = "precgd"
    if W is not None and method in CLOSED_FORMS:
        raise ValueError(
            f"mask is supported by the iterative methods {ITERATIVE_METHODS}; got method={method!r}"
        )
    if method == "cholesky" and k != n:
        raise ValueError(f"rank must be None or N={n} for method='cholesky'; got {rank}")
    if optimizer is not None and not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"optimizer must be an optax GradientTransformation; got {optimizer!r}")
    if method not in ITERATIVE_METHODS:
        given = dict(optimizer=optimizer, x0=x0, key=key, rtol=rtol, atol=atol)
        given.update(max_steps=max_steps, learning_rate=learning_rate)
        given.update(fixed_steps=fixed_steps or None)
        for name in ITERATIVE_OPTIONS:
            if given[name] is not None:
                raise ValueError(
                    f"{name} applies to methods {ITERATIVE_METHODS}; got method={method!r}"
                )
    batch = C.shape[:-2]
    if x0 is not None:
        x0 = as_float_array(x0, "x0").astype(C.dtype)
        if x0.shape != (*batch, n, k):
            raise ValueError(f"x0 must have shape (..., N, k) = {(*batch, n, k)}; got {x0.shape}")

    if n == 0:
        zeros = jnp.zeros(batch, C.dtype)
        int_zeros = zeros.astype(jnp.int32)
        return Solution(jnp.zeros((*batch, 0, 0), C.dtype), zeros, int_zeros, int_zeros)

    if W is not None:
        # Unobserved entries may hold anything (NaN is a common way to write "unknown").
        C = jnp.where(W > 0, C, 0.0).astype(C.dtype)
    flat_C = C.reshape((-1, n, n))
    count = flat_C.shape[0]
    probe = count == 1 and n >= _PROBE_MIN_N
    if method in ITERATIVE_METHODS:
        opts = _iter_options(C.dtype, n, rtol, atol, max_steps, learning_rate, method, fixed_steps)
        key = check_key(key)
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(count))
    else:
        opts, keys = None, None
    flat_M = None if W is None else W.reshape((-1, n, n))
    flat_x0 = None if x0 is None else x0.reshape((-1, n, k))

    config = _Config(method, k, probe, measure_residual, optimizer, opts, fixed_steps)
    with jax.default_matmul_precision(precision):
        if method in CLOSED_FORMS and count > 1:
            flat = _solve_closed_batch(config, flat_C)
        else:
            checks = None if probe or flat_M is not None else exact_checks(flat_C)
            chunk = _chunk_size(n) if method in ITERATIVE_METHODS else None
            flat = _over_matrices(
                functools.partial(_solve_one, config),
                flat_C,
                flat_M,
                flat_x0,
                keys,
                checks,
                chunk=chunk,
            )
    X = flat.X.reshape((*batch, n, flat.X.shape[-1]))
    return Solution(X, *(a.reshape(batch) for a in flat[1:]))
