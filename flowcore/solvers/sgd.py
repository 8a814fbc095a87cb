"""Minibatch SGD drivers. The loss says what it provides: a loss over data compiles its
per-example gradient into the SGD kernel (``sgd_kernel()``: a DataLoss), a network gives its
per-example objective to JAX (``sgd_examples()``: fc.nn). Both draw the same batches (batches.h)
for a (seed, run id)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flowcore.engine import _stochastic as S
from flowcore.engine.checks import INT32_MAX, count, positive, threads as _threads
from flowcore.engine._status import Interrupted
from flowcore.solvers.runs import Run

MAX_ITERATE_BYTES = 8 * 2**30      # the [N, kept, D] array a run may allocate


def _rates(lr, n):
    """A method's rate (checked when the method was made) as one float or one per start [n]."""
    if isinstance(lr, np.ndarray) and lr.shape != (n,):
        raise ValueError(f"lr must be one number or one per start (shape [{n}]), got shape {lr.shape}")
    return lr


@dataclass
class _SGDArgs:
    th: np.ndarray        # [N, D] starts
    steps: int
    every: int
    batch: int
    rates: np.ndarray     # [N]
    seed: int
    key: np.ndarray       # Philox key words
    ids: np.ndarray       # [N] run ids
    radius: float
    save: np.ndarray      # the steps recorded


def _sgd_args(theta0, dim, n, m, steps, escape_radius):
    """SGD's arguments checked once for both drivers (the compiled kernel, and JAX for networks)."""
    th = np.atleast_2d(np.asarray(theta0, dtype=np.float64))
    if th.ndim != 2 or th.shape[1] != dim:
        raise ValueError(f"theta0 must have shape [N, {dim}] (or [{dim}]), got {np.shape(theta0)}")
    N = th.shape[0]
    steps = count(steps, "steps", 0, INT32_MAX - 1)
    if m.every > max(steps, 1):
        raise ValueError(f"every must be an integer in [1, {max(steps, 1)}] (the steps), got {m.every}")
    if m.batch > n:
        raise ValueError(f"batch must be an integer in [1, {n}] (the examples), got {m.batch}")
    rates = np.ascontiguousarray(np.broadcast_to(_rates(m.lr, N), (N,)), dtype=np.float64)
    seed, key, ids = S.seed_and_ids(m.seed, m.ids, N)
    save = S.save_steps(steps, m.every)
    if N * len(save) * dim * 8 > MAX_ITERATE_BYTES:
        raise ValueError(f"keeping {len(save)} iterates of {N} runs needs {N * len(save) * dim * 8 / 2**30:.0f} "
                         "GiB: pass every= to keep fewer")
    radius = np.inf if escape_radius == np.inf else positive(escape_radius, "escape_radius")
    return _SGDArgs(np.ascontiguousarray(th), steps, m.every, m.batch, rates, seed, key, ids, radius, save)


def _sgd_on_data(data, theta0, m, steps, escape_radius, compute):
    a = _sgd_args(theta0, data.dim, data.n, m, steps, escape_radius)
    N = a.th.shape[0]
    r = np.array([m.beta, a.radius], dtype=np.float64)
    n = np.array([a.steps, data.n, a.batch, int(bool(m.replace)), len(a.save), *a.key], dtype=np.int64)
    device = S.pick_device(compute.device, N)
    problem, rows = data.sgd_kernel()
    out, last, status, nsteps, interrupted = S.run(
        problem, device, r, n, a.save, rows, a.ids, a.rates, a.th,
        threads=_threads(compute.threads, -(-N // 64)))
    run = Run(out, status, nsteps, np.broadcast_to(a.rates[:, None], (N, a.steps)), "sgd",
              None if a.every == 1 else a.save, a.seed, last, device)
    if interrupted:
        raise Interrupted(run, "fc.descend")
    return run


def run_sgd(loss, theta0, method, steps, escape_radius, compute):
    """SGD by whichever driver ``loss`` provides for (see the module docstring)."""
    if hasattr(loss, "sgd_kernel"):
        return _sgd_on_data(loss, theta0, method, steps, escape_radius, compute)
    if hasattr(loss, "sgd_examples"):
        return _sgd_on_network(loss, theta0, method, steps, escape_radius)
    raise TypeError("fc.SGD needs a loss over data: a flowcore.DataLoss (DataLoss.from_expr(example, data)) or a "
                    f"network (fc.nn.mlp); got {type(loss).__name__}")


def _sgd_on_network(net, theta0, method, steps, escape_radius):
    """Minibatch SGD (heavy-ball β) on a network's data, many runs at once (JAX: the batch gradient
    vmapped over runs, the steps a jitted scan). The batches are the very ones the compiled SGD
    kernel draws for (seed, run id) — batches.h's, through ``_stochastic.Batches`` — so a
    network run and a DataLoss run of the same model see the same examples. Returns a
    :class:`flowcore.Run` (``fc.descend(net, ..., method="sgd")`` calls this)."""
    import jax
    import jax.numpy as jnp
    n = net.n_samples
    a = _sgd_args(theta0, net.dim, n, method, steps, escape_radius)
    beta, replace = method.beta, method.replace
    th, steps, batch, rates, key, ids, radius, save = a.th, a.steps, a.batch, a.rates, a.key, a.ids, a.radius, a.save
    N = th.shape[0]
    ob = net.sgd_examples()
    Xj, Yj = jnp.asarray(ob.X), jnp.asarray(ob.Y)

    def batch_grad(theta, idx):
        return jax.grad(lambda t: jnp.mean(ob.examples(t, Xj[idx], Yj[idx])))(theta)

    @jax.jit
    def chunk(carry, idx):                  # idx [S, N, B]: S steps of every run
        def step(c, ix):
            x, v, status, k = c
            g = jax.vmap(batch_grad)(x, ix)
            v_new = beta * v - rates[:, None] * g
            x_new = x + v_new
            norm2 = jnp.sum(x_new * x_new, axis=1)
            going = status == 0
            bad = ~jnp.isfinite(norm2)
            out = jnp.where(bad, 4, jnp.where(norm2 > radius * radius, 1, 0))
            x = jnp.where(going[:, None], x_new, x)
            v = jnp.where(going[:, None], v_new, v)
            k = k + going
            status = jnp.where(going, out, status)
            return (x, v, status, k), x
        return jax.lax.scan(step, carry, idx)

    carry = (jnp.asarray(th), jnp.zeros_like(th), jnp.zeros(N, dtype=jnp.int32), jnp.zeros(N, dtype=jnp.int32))
    out = np.full((N, len(save), net.dim), np.nan)
    out[:, 0] = th
    o, k = 1, 0
    batches = S.Batches(key, ids, n, batch, replace)
    while k < steps:
        k_end = min(steps, k + max(1, 4096 // max(1, batch)))
        carry, xs = chunk(carry, jnp.asarray(batches.next(k_end)))
        xs = np.asarray(xs)                          # [S, N, D]: the iterate after steps k+1 … k_end
        while o < len(save) and save[o] <= k_end:
            out[:, o] = xs[save[o] - k - 1]
            o += 1
        k = k_end
    x, _, status, nsteps = (np.asarray(c) for c in carry)
    nsteps = nsteps.astype(np.int64)
    stopped = status != 0
    for i in np.nonzero(stopped)[0]:                 # NaN after a run stopped (as the kernels)
        out[i, save > nsteps[i]] = np.nan
    return Run(out, status.astype(np.int8), nsteps, np.broadcast_to(rates[:, None], (N, steps)), "sgd",
               None if a.every == 1 else save, a.seed, x, "cpu" if jax.default_backend() == "cpu" else "gpu")
