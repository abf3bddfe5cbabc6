"""Training one model configuration over several seeds at once, with per-step diagnostics.

The whole run is one jitted function: seeds are ``vmap``-ed, steps are a ``lax.scan`` inside a
``lax.scan`` over evaluation points, so a run compiles once and then costs only arithmetic. The
same configuration, data and seeds give the same numbers.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from ._data import Dataset
from ._mlp import ModMLP, Modulus

__all__ = ["RunConfig", "TrainSettings", "train"]

OPTIMIZERS = ("adam", "sgd")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One trained configuration: the layer variant, its map and initialisation, the optimizer.

    ``m_lr_scale`` multiplies the learning rate of the modulus (0 freezes it); ``clip_norm``
    clips the global gradient norm before the optimizer (``None``: no clipping).
    """

    name: str
    variant: str = "plain"
    optimizer: str = "adam"
    lr: float = 1e-3
    mod: str = "floor"
    mod_options: tuple = ()
    m_init: str = "glorot_uniform"
    m_scale: float = 1.0
    m_param: str = "direct"
    m_lr_scale: float = 1.0
    clip_norm: float | None = None
    kernel_init: str = "glorot_uniform"

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"`optimizer` must be one of {OPTIMIZERS}, got {self.optimizer!r}.")
        if not self.lr > 0:
            raise ValueError(f"`lr` must be positive, got {self.lr!r}.")
        if not self.m_lr_scale >= 0:
            raise ValueError(f"`m_lr_scale` must be non-negative, got {self.m_lr_scale!r}.")

    def layer_options(self) -> dict[str, Any]:
        return dict(
            variant=self.variant,
            mod=self.mod,
            mod_options=dict(self.mod_options),
            kernel_init=self.kernel_init,
            m_init=self.m_init,
            m_scale=self.m_scale,
            m_param=self.m_param,
        )


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """What every configuration of a study shares: the network size, steps, batch, evaluation."""

    depth: int = 3
    width: int = 128
    steps: int = 2000
    batch_size: int = 64
    eval_every: int = 100

    def __post_init__(self):
        for name in ("depth", "width", "steps", "batch_size", "eval_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive int, got {value!r}.")
        if self.steps % self.eval_every:
            raise ValueError(
                f"`steps` ({self.steps}) must be a multiple of `eval_every` ({self.eval_every})."
            )


def _tooth_index(mod: str, x: jax.Array, m: jax.Array) -> jax.Array:
    """The integer ``k`` with ``x mod m = x - k·m`` under the map ``mod`` (0 where ``m = 0``)."""
    safe = jnp.where(m == 0, 1, m)
    u = x / safe
    if mod == "trunc":
        k = jnp.trunc(u)
    elif mod == "centred":
        k = jnp.floor(u + 0.5)
    else:  # floor, fourier (a surrogate of floor), ste (floor forward)
        k = jnp.floor(u)
    return jnp.where(m == 0, 0, k)


def _mod_pairs(model: ModMLP) -> list[tuple[jax.Array, jax.Array, jax.Array]]:
    """(argument of the mod, modulus as used, effective value) for each layer with a modulus."""
    pairs = []
    for layer in model.layers:
        if layer.variant == "w_mod":
            pairs.append((layer.kernel[...], layer.m(), layer.effective_kernel()))
        elif layer.variant == "b_mod":
            pairs.append((layer.bias[...], layer.m(), layer.effective_bias()))
    return pairs


def _flat(xs: list[jax.Array]) -> jax.Array:
    return jnp.concatenate([x.ravel() for x in xs]) if xs else jnp.zeros((0,))


def _grad_norms(grads, variant: str) -> tuple[jax.Array, jax.Array]:
    """‖∇m‖ and ‖∇(argument of the mod)‖ over all layers (kernel for plain)."""
    target = "bias" if variant == "b_mod" else "kernel"
    sq_m = jnp.zeros(())
    sq_t = jnp.zeros(())
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        key = jax.tree_util.keystr(path)
        if "modulus" in key:
            sq_m = sq_m + jnp.sum(jnp.square(g))
        elif target in key:
            sq_t = sq_t + jnp.sum(jnp.square(g))
    return jnp.sqrt(sq_m), jnp.sqrt(sq_t)


def _optimizer(config: RunConfig, params, lr, m_lr, clip) -> optax.GradientTransformation:
    """The optimizer; ``lr``, ``m_lr`` and ``clip`` may be traced (one compile serves a sweep)."""
    make = optax.adam if config.optimizer == "adam" else optax.sgd
    labels = jax.tree_util.tree_map_with_path(
        lambda p, _: "m" if "modulus" in jax.tree_util.keystr(p) else "w", params
    )
    tx = optax.multi_transform({"w": make(lr), "m": make(m_lr)}, labels)
    if config.clip_norm is not None:
        tx = optax.chain(optax.clip_by_global_norm(clip), tx)
    return tx


def _structure(config: RunConfig) -> RunConfig:
    """``config`` with its numeric hyper-parameters neutralised: the key of the compile cache."""
    return dataclasses.replace(
        config,
        name="",
        lr=1.0,
        m_lr_scale=1.0,
        m_scale=1.0,
        clip_norm=None if config.clip_norm is None else 1.0,
    )


def train(
    config: RunConfig, data: Dataset, seeds: list[int] | tuple[int, ...], settings: TrainSettings
) -> dict[str, Any]:
    """Train ``config`` once per seed on ``data``; return numbers only (NumPy arrays and lists).

    Returned keys (``S`` seeds, ``T`` steps, ``E = T / eval_every`` evaluation points):

    * ``test_accuracy`` ``(S,)``: final test accuracy per seed; ``eval_steps`` ``(E,)`` and
      ``test_accuracy_curve`` ``(S, E)``;
    * per step ``(S, T)``: ``loss``, ``finite`` (the loss was finite), ``grad_norm_m``,
      ``grad_norm_w`` (of the argument of the mod: kernels, or biases for ``b_mod``),
      ``wrapped`` (fraction of modded entries with ``|k| ≥ 1`` where ``x mod m = x - k·m``),
      ``tooth_changes`` (entries whose ``k`` changed in the step), ``m_sign_flips`` (entries of
      ``m`` whose sign changed), ``eff_change`` (``‖ΔW_eff‖/‖W_eff‖`` over the step);
    * ``effective`` / ``effective_init``: first layer's effective weights per seed after /
      before training (flattened), ``m_sign_agreement``: fraction of effective weights with the
      sign of their modulus (final, per seed), ``m_abs_final``: mean ``|m|`` at the end.

    The learning rates, ``m_scale`` and ``clip_norm`` are traced: configurations that differ only
    in them share one compiled program.
    """
    if not seeds:
        raise ValueError("`seeds` must name at least one seed.")
    fn, n_modded = _compiled(
        _structure(config),
        settings,
        data.x_train.shape[1],
        data.n_classes,
        data.x_train.shape[0],
    )
    hyper = {
        "lr": jnp.float32(config.lr),
        "m_lr": jnp.float32(config.lr * config.m_lr_scale),
        "clip": jnp.float32(config.clip_norm if config.clip_norm is not None else 1.0),
        "m_scale": jnp.float32(config.m_scale),
    }
    keys = jnp.stack([jax.random.key(int(s)) for s in seeds])
    arrays = [jnp.asarray(a) for a in (data.x_train, data.y_train, data.x_test, data.y_test)]
    diag, acc, extra = fn(keys, hyper, *arrays)
    out: dict[str, Any] = {k: np.asarray(v) for k, v in diag.items()}
    out.update({k: np.asarray(v) for k, v in extra.items()})
    out["test_accuracy_curve"] = np.asarray(acc)
    out["test_accuracy"] = np.asarray(acc)[:, -1]
    out["eval_steps"] = np.arange(settings.eval_every, settings.steps + 1, settings.eval_every)
    out["n_modded_entries"] = n_modded
    return out


@functools.lru_cache(maxsize=32)
def _compiled(config: RunConfig, settings: TrainSettings, n_in: int, n_classes: int, n_train: int):
    """The jitted, seed-vmapped training run for one configuration structure."""

    def make(key, m_scale=1.0):
        options = config.layer_options()
        options["m_scale"] = m_scale
        return ModMLP(
            n_in,
            n_classes,
            depth=settings.depth,
            width=settings.width,
            rngs=nnx.Rngs(params=key),
            **options,
        )

    # abstract: the structure without running (and compiling) the initialisers eagerly
    graphdef, template = nnx.split(nnx.eval_shape(lambda: make(jax.random.key(0))))
    n_modded = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(template, Modulus)))
    batch = min(settings.batch_size, n_train)
    per_epoch = n_train // batch
    has_mod = config.variant != "plain"

    def loss_fn(params, x, y):
        logits = nnx.merge(graphdef, params)(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def mod_state(params):
        model = nnx.merge(graphdef, params)
        pairs = _mod_pairs(model)
        ks = _flat([_tooth_index(config.mod, x, m) for x, m, _ in pairs])
        ms = _flat([m for _, m, _ in pairs])
        eff = _flat([e for _, _, e in pairs])
        return ks, ms, eff

    def run(keys, hyper, x_train, y_train, x_test, y_test):
        tx = _optimizer(config, template, hyper["lr"], hyper["m_lr"], hyper["clip"])

        def step(carry, step_index):
            params, opt_state, data_key, prev = carry
            epoch, within = jnp.divmod(step_index, per_epoch)
            perm = jax.random.permutation(jax.random.fold_in(data_key, epoch), n_train)
            idx = jax.lax.dynamic_slice(perm, (within * batch,), (batch,))
            loss, grads = jax.value_and_grad(loss_fn)(params, x_train[idx], y_train[idx])
            updates, opt_state = tx.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            g_m, g_w = _grad_norms(grads, config.variant)
            diag = {
                "loss": loss,
                "finite": jnp.isfinite(loss),
                "grad_norm_m": g_m,
                "grad_norm_w": g_w,
            }
            new = prev
            if has_mod:
                (k0, m0, e0), new = prev, mod_state(params)
                k1, m1, e1 = new
                diag["wrapped"] = jnp.mean(jnp.abs(k0) >= 1)
                diag["tooth_changes"] = jnp.sum(k0 != k1)
                diag["m_sign_flips"] = jnp.sum(jnp.sign(m0) != jnp.sign(m1))
                diag["eff_change"] = jnp.linalg.norm(e1 - e0) / jnp.linalg.norm(e0)
            return (params, opt_state, data_key, new), diag

        def accuracy(params):
            logits = nnx.merge(graphdef, params)(x_test)
            return jnp.mean(jnp.argmax(logits, -1) == y_test)

        def chunk(carry, first_step):
            steps = first_step + jnp.arange(settings.eval_every)
            carry, diag = jax.lax.scan(step, carry, steps)
            return carry, (diag, accuracy(carry[0]))

        def one_seed(seed_key):
            init_key, data_key = jax.random.split(seed_key)
            params = nnx.state(make(init_key, hyper["m_scale"]))
            opt_state = tx.init(params)
            starts = jnp.arange(0, settings.steps, settings.eval_every)
            init_params = params
            prev = mod_state(params) if has_mod else ()
            carry = (params, opt_state, data_key, prev)
            (params, *_), (diag, acc) = jax.lax.scan(chunk, carry, starts)
            diag = jax.tree.map(lambda a: a.reshape(-1), diag)
            first_w = lambda p: nnx.merge(graphdef, p).layers[0].effective_kernel().ravel()  # noqa: E731
            extra = {"effective": first_w(params), "effective_init": first_w(init_params)}
            if has_mod:
                pairs = _mod_pairs(nnx.merge(graphdef, params))
                eff = _flat([e for *_, e in pairs])
                ms = _flat([m for _, m, _ in pairs])
                nonzero = eff != 0
                agree = jnp.sum((jnp.sign(eff) == jnp.sign(ms)) & nonzero) / jnp.maximum(
                    jnp.sum(nonzero), 1
                )
                extra["m_sign_agreement"] = agree
                extra["m_abs_final"] = jnp.mean(jnp.abs(ms))
            return diag, acc, extra

        return jax.vmap(one_seed)(keys)

    return jax.jit(run), n_modded
