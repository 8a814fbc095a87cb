"""A ResNet and a neural ODE on the same task (lesson 16b): depth as discrete steps or as time.

Both move a 2-D hidden state by the same vector field, a one-hidden-layer block
f(x; W, b, V) = V tanh(Wx + b) (width m), and read the class off the final state by a linear
logit wᵀx + c:

- the **ResNet** takes K residual steps x_{k+1} = x_k + f(x_k; θ_k), one block of weights per step;
- the **neural ODE** follows dx/dt = f(x; θ) for t ∈ [0, K] with one block of weights: a ResNet with
  shared weights is its Euler method with step 1.

Both are trained by full-batch GD with heavy-ball momentum in JAX on the binary cross-entropy, the
ODE through RK4 with ``ode_steps`` fixed steps (discretise, then optimise). The trained ODE is then
integrated by :func:`flowcore.solve` (DOP853, adaptive) with the same field, so that what is drawn
is the continuous model, not its training discretisation (their disagreement is reported).

Smoothness of the learned transformation, measured on both:

- the speed along depth, ‖x_{k+1} − x_k‖ per block against ‖dx/dt‖ along t;
- the velocity jump between consecutive unit steps, ‖v_{k+1} − v_k‖ / mean‖v‖ with v_k = x_{k+1} − x_k;
- the Jacobian determinant of the whole map x_0 ↦ x_K over a grid of inputs. The ODE's is
  exp(∫₀ᴷ tr ∂f/∂x dt) > 0 (Liouville): an orientation-preserving bijection that cannot fold the
  plane. The ResNet's is a product of det(I + ∂f_k/∂x), free to change sign where a block's step
  is large. The ODE's determinant is computed both ways (Liouville along fc.solve's trajectories,
  and JAX's Jacobian of a fine RK4 map) as a check of each by the other.
"""
import numpy as np

import flowcore as fc

__all__ = ["resnet_and_ode"]


def _jax():
    from flowcore.problems.nn import _jax as load
    return load()


def _init(rng, m, blocks):
    """One block's weights (W [m, 2] ~ N(0, 1), b = 0, V [2, m] small: each step starts near the
    identity) per ResNet step, the first of them for the ODE; the readout w, c."""
    def block():
        return {"W": rng.normal(size=(m, 2)), "b": np.zeros(m), "V": rng.normal(0, 0.3 / np.sqrt(m), size=(2, m))}
    read = {"w": rng.normal(size=2), "c": np.zeros(())}
    res = {"blocks": [block() for _ in range(blocks)], "read": read}
    return res, {"block": res["blocks"][0], "read": read}


def _block(p, x):
    """The vector field f(x) = V tanh(Wx + b) at states x [..., 2]."""
    jnp = _jax().numpy
    return jnp.tanh(x @ p["W"].T + p["b"]) @ p["V"].T


def _resnet_states(params, x):
    """x_0 … x_K [K+1, n, 2]."""
    jnp = _jax().numpy
    out = [x]
    for p in params["blocks"]:
        out.append(out[-1] + _block(p, out[-1]))
    return jnp.stack(out)


def _rk4_map(p, x, T, steps):
    """x(T) of dx/dt = f(x; p) by RK4 with ``steps`` fixed steps."""
    dt = T / steps

    def step(_, x):
        k1 = _block(p, x)
        k2 = _block(p, x + dt / 2 * k1)
        k3 = _block(p, x + dt / 2 * k2)
        k4 = _block(p, x + dt * k3)
        return x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return _jax().lax.fori_loop(0, steps, step, x)          # a loop, not 8·16 unrolled steps to compile


def _train(loss, params, lr, steps, beta=0.9):
    """Full-batch GD with heavy-ball momentum, in one jitted scan; the loss per step."""
    jax = _jax()
    grad = jax.value_and_grad(loss)

    def step(carry, _):
        p, v = carry
        E, g = grad(p)
        v = jax.tree_util.tree_map(lambda a, b: beta * a - lr * b, v, g)
        return (jax.tree_util.tree_map(lambda a, b: a + b, p, v), v), E
    zeros = jax.tree_util.tree_map(lambda a: 0 * a, params)
    (params, _), losses = jax.jit(lambda p: jax.lax.scan(step, (p, zeros), None, length=steps))(params)
    return params, np.asarray(losses)


def resnet_and_ode(X, y, blocks=4, width=16, steps=2000, lr=0.05, ode_steps=16, seed=0, grid=41, rtol=1e-10):
    """Train a ResNet of ``blocks`` residual steps and a neural ODE over t ∈ [0, blocks] on (X [n, 2],
    y [n] in {0, 1}) and measure both (see the module docstring).

    Returns a dict: ``loss`` per training step and ``accuracy`` for 'resnet' and 'ode' (the ODE's
    from fc.solve's end states); ``resnet_states`` [K+1, n, 2]; ``ode_t`` and ``ode_states``
    [n, len(t), 2] (fc.solve, DOP853 at ``rtol``); ``ode_rk4_vs_solve`` max‖x_RK4(K) − x_solve(K)‖ over
    the data; ``speed`` (per block ‖x_{k+1} − x_k‖ and ‖f(x(t))‖ along t, means over the data);
    ``velocity_jump`` for both; ``grid`` inputs [g², 2], ``det_resnet`` and ``det_ode`` (Liouville)
    and ``det_ode_rk4`` (JAX Jacobian of RK4 with 8·``ode_steps`` steps) there; ``readout`` per model
    (w, c) for drawing the decision line in the final state's plane; ``params`` the trained blocks
    (W, b, V as numpy arrays: a list of K for 'resnet', one for 'ode')."""
    jax = _jax()
    jnp = jax.numpy
    X, y = np.asarray(X, float), np.asarray(y)
    if X.ndim != 2 or X.shape[1] != 2 or y.shape != (len(X),) or not np.isin(y, (0, 1)).all():
        raise ValueError(f"X must be [n, 2] and y [n] of 0/1 labels; got X {X.shape}, y {y.shape}")
    for name, v in (("blocks", blocks), ("width", width), ("steps", steps), ("ode_steps", ode_steps)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    T, sign = float(blocks), jnp.asarray(2.0 * y - 1)
    res0, ode0 = jax.tree_util.tree_map(jnp.asarray, _init(np.random.default_rng(seed), width, blocks))

    def bce(final, read):                 # mean log(1 + e^{−y s}), s the logit
        return jnp.mean(jnp.logaddexp(0.0, -sign * (final @ read["w"] + read["c"])))

    res_loss = lambda p: bce(_resnet_states(p, X)[-1], p["read"])              # noqa: E731
    ode_loss = lambda p: bce(_rk4_map(p["block"], X, T, ode_steps), p["read"])    # noqa: E731
    res, res_curve = _train(res_loss, res0, lr, steps)
    ode, ode_curve = _train(ode_loss, ode0, lr, steps)

    f_ode = jax.jit(lambda x: _block(ode["block"], x))
    field = fc.Field.from_callable(lambda x: np.asarray(f_ode(x)), dim=2, vectorized=True, name="neural ODE")
    t = np.linspace(0.0, T, 40 * blocks + 1)
    sol = fc.solve(field, X, t_eval=t, method=fc.Dop853(rtol=rtol, atol=1e-12))
    xs = sol.y.real                                             # [n, len(t), 2]
    states = np.asarray(_resnet_states(res, X))                 # [K+1, n, 2]
    unit = xs[:, ::40]                                          # the ODE at t = 0, 1, …, K

    def jump(path):                                             # path [K+1, n, 2]
        v = np.diff(path, axis=0)
        return float(np.mean(np.linalg.norm(np.diff(v, axis=0), axis=-1)) / np.mean(np.linalg.norm(v, axis=-1)))

    def accuracy(final, read):
        return float(np.mean((final @ np.asarray(read["w"]) + float(read["c"]) > 0) == (y == 1)))

    g1 = np.linspace(X.min() - 0.5, X.max() + 0.5, grid)
    G = np.stack(np.meshgrid(g1, g1), -1).reshape(-1, 2)
    det_res = np.asarray(jax.vmap(lambda x: jnp.linalg.det(jax.jacfwd(lambda z: _resnet_states(res, z)[-1])(x)))(G))
    det_rk4 = np.asarray(jax.vmap(lambda x: jnp.linalg.det(
        jax.jacfwd(lambda z: _rk4_map(ode["block"], z, T, 8 * ode_steps))(x)))(G))
    trace = jax.jit(jax.vmap(lambda x: jnp.trace(jax.jacfwd(lambda z: _block(ode["block"], z))(x))))
    gs = fc.solve(field, G, t_eval=t, method=fc.Dop853(rtol=rtol, atol=1e-12)).y.real      # [g², len(t), 2]
    tr = np.asarray(trace(gs.reshape(-1, 2))).reshape(len(G), len(t))
    det_ode = np.exp(np.sum((tr[:, 1:] + tr[:, :-1]) / 2 * np.diff(t), axis=-1))            # ∫ tr by trapezoids
    rk4_end = np.asarray(_rk4_map(ode["block"], X, T, ode_steps))
    as_np = lambda r: {"w": np.asarray(r["w"]), "c": float(r["c"])}                   # noqa: E731
    tree = lambda b: {k: np.asarray(v) for k, v in b.items()}                          # noqa: E731
    return {"params": {"resnet": [tree(b) for b in res["blocks"]], "ode": tree(ode["block"])},
            "blocks": blocks, "width": width, "steps": steps, "lr": lr, "ode_steps": ode_steps,
            "loss": {"resnet": res_curve, "ode": ode_curve},
            "accuracy": {"resnet": accuracy(states[-1], res["read"]), "ode": accuracy(xs[:, -1], ode["read"])},
            "readout": {"resnet": as_np(res["read"]), "ode": as_np(ode["read"])},
            "resnet_states": states, "ode_t": t, "ode_states": xs,
            "ode_status": int(np.sum(sol.status != fc.Status.OK)),
            "ode_rk4_vs_solve": float(np.max(np.linalg.norm(rk4_end - xs[:, -1], axis=-1))),
            "speed": {"resnet": np.mean(np.linalg.norm(np.diff(states, axis=0), axis=-1), axis=1),
                      "ode": np.mean(np.linalg.norm(np.asarray(f_ode(xs.reshape(-1, 2))).reshape(xs.shape), axis=-1),
                                     axis=0)},
            "velocity_jump": {"resnet": jump(states), "ode": jump(np.moveaxis(unit, 1, 0))},
            "grid": G, "det_resnet": det_res, "det_ode": det_ode, "det_ode_rk4": det_rk4}
