"""Networks: the principal flow without forming the Hessian; the edge-of-stability analysis step
on the Iris MLP against a straightforward JAX-only implementation; Lanczos sharpness at D ≈ 10⁵.

(1) PF, one GD step (t ∈ [0, h], DOP853, rtol 1e-10) on the Iris MLP 4→10→10→3 (tanh,
cross-entropy, D = 193) at h = 1 from GD's iterate 30: the dense tracked PF (the complex Hessian
and LAPACK's eigendecomposition at every evaluation) against the matrix-free one (Arnoldi on
Hessian–vector products, flowcore.engine.krylov), in the same run; their results are compared.
(2) The matrix-free PF, one GD step, on the digits MLP 64→256→256→10 (D = 85 002) and the digits
CNN (fc.nn.cnn, D = 87 178) at hλ_max = 2.5 from GD's iterate 10 (dopri5, rtol 1e-6: one GD step
of a network of 10⁵ parameters, where the dense Hessian alone would take 58 GB), with its Krylov
dimensions and Hessian–vector products counted. Skipped with --quick.
(3) --accuracy (alone): the step of (2) on the MLP at looser dopri5 and Krylov tolerances
(fc.Krylov), each end point's distance to a tight reference relative to the step's length.

Iris MLP 4→10→10→10→10→3 (tanh, cross-entropy, D = 413), at an iterate past its edge of
stability (h = 0.2, step 150). One analysed GD step is: the Hessian, its eigendecomposition, and
the one-step predictions of the NGF, IGR and PF from that iterate.

- flowcore: loss.hess (JAX autodiff through fc.Loss.from_jax), np.linalg.eigh, and fc.solve of
  fc.flows.ngf / igr / pf (DOP853, rtol 1e-7, atol 1e-10: adaptive, the PF's branch tracked).
- JAX only: jax.hessian + jnp.linalg.eigh jitted, and each flow integrated by jitted fixed-step RK4
  with 16 steps over h, the PF's field from jnp.linalg.eig of the complex Hessian (the principal
  branch at every stage, no tracking) — what one would write by hand in JAX.
The one-step results of both are compared (their difference is printed), so the two do the same
work. Sharpness on the digits MLP 64→256→256→10 (D ≈ 85 000): fc.nn.top_eigenpairs (Lanczos on
Hessian–vector products), per call; its Hessian would need 58 GB.

    python benchmarks/bench_nn.py [--quick]
"""
import argparse
import time

import numpy as np

import flowcore as fc
from _common import median_time, table, write_json


def jax_only(net_objective, D, h, substeps=16):
    """The same analysis written directly in JAX (jit), returning a function θ -> (λ, three one-step ends)."""
    import jax
    import jax.numpy as jnp
    g = jax.grad(net_objective)
    gc = jax.grad(net_objective, holomorphic=True)
    hess = jax.jit(jax.hessian(net_objective))
    hess_c = jax.jacfwd(gc, holomorphic=True)

    def ngf(t):
        return -g(t)

    def igr(t):
        gt = g(t)
        return -(gt + 0.5 * h * jax.jvp(g, (t,), (gt,))[1])

    def pf(t):
        lam, V = jnp.linalg.eig(hess_c(t))
        z = h * lam
        alpha = jnp.where(jnp.abs(z) < 1e-8, -1.0 + 0j, jnp.log(1 - z + 0j) / jnp.where(z == 0, 1, z))
        return V @ (alpha * jnp.linalg.solve(V, gc(t)))

    def rk4(f, y):
        dt = h / substeps

        def body(_, y):
            k1 = f(y)
            k2 = f(y + dt / 2 * k1)
            k3 = f(y + dt / 2 * k2)
            k4 = f(y + dt * k3)
            return y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return jax.lax.fori_loop(0, substeps, body, y)

    eigh = jax.jit(jnp.linalg.eigh)
    steps = {"ngf": jax.jit(lambda t: rk4(ngf, t)), "igr": jax.jit(lambda t: rk4(igr, t)),
             "pf": lambda t: np.asarray(jax.jit(lambda s: rk4(pf, s))(t + 0j))}   # eig runs on the CPU only
    return hess, eigh, steps


def pf_dense_vs_matrix_free(rep):
    """(1): one GD step of the PF on the Iris MLP, dense and matrix-free."""
    net = fc.nn.mlp(*fc.nn.iris(), widths=(10, 10), activation="tanh", loss="cross_entropy", seed=0)
    th = fc.descend(net.loss, net.theta0[None], fc.GD(1.0), 30).iterates[0, -1]
    out, ends = {}, {}
    for kind, krylov in (("dense", False), ("matrix-free", True)):
        flow = fc.flows.pf(net.loss, 1.0, krylov=krylov)
        run = lambda: fc.solve(flow, th[None], t_span=(0, 1.0), method=fc.Dop853(rtol=1e-10, atol=1e-12))   # noqa: E731
        ends[kind] = run().y[0, -1]                   # (also compiles the matrix-free one's JAX functions)
        out[kind] = median_time(run, repeats=rep, min_time=0.0)
        if krylov:
            st = flow.impl.stats
            out["krylov_dims"] = (int(np.median(st["dims"])), int(max(st["dims"])))
            out["hvps_per_evaluation"] = st["hvps"] / st["evaluations"]
    out["difference"] = float(np.linalg.norm(ends["dense"] - ends["matrix-free"]) / np.linalg.norm(ends["dense"]))
    out["dim"], out["hlam_max"] = net.dim, float(np.linalg.eigvalsh(net.loss.hess(th))[-1])
    return out


def pf_at_scale(networks=("mlp", "cnn")):
    """(2): one GD step of the matrix-free PF on the digits MLP and CNN (D ≈ 10⁵)."""
    rows = []
    X, Y = fc.nn.digits()
    make = {"mlp": lambda: fc.nn.mlp(X, Y, widths=(256, 256), activation="tanh", loss="cross_entropy", seed=0),
            "cnn": lambda: fc.nn.cnn(X, Y)}
    for net in (make[k]() for k in networks):
        th = fc.descend(net.loss, net.theta0[None], fc.GD(0.5), 10).iterates[0, -1]
        lam = fc.nn.top_eigenpairs(net.loss, th, 1)[0][0]
        h = 2.5 / lam
        flow = fc.flows.pf(net.loss, h)
        t0 = time.perf_counter()
        sol = fc.solve(flow, th[None], t_span=(0, h), method=fc.Dopri5(rtol=1e-6, atol=1e-9))
        st = flow.impl.stats
        rows.append({"network": repr(net)[8:-1], "D": net.dim, "seconds": time.perf_counter() - t0,
                     "status": fc.Status(int(sol.status[0])).name, "evaluations": int(sol.nfev[0]),
                     "hvps": int(st["hvps"]), "krylov_median": float(np.median(st["dims"])),
                     "krylov_max": int(max(st["dims"]))})
        print(f"  {rows[-1]['network']}: {rows[-1]['seconds']:.0f} s, {rows[-1]['status']}, "
              f"{rows[-1]['hvps']} Hessian–vector products", flush=True)    # each row as it ends: minutes each
    return rows


ACCURACY = ((1e-6, 1e-11), (1e-6, 1e-8), (1e-5, 1e-7), (1e-4, 1e-6), (1e-3, 1e-5))   # (rtol, fc.Krylov tol)


def pf_step_accuracy(settings=ACCURACY):
    """(3), --accuracy: the digits MLP's step of (2) at several dopri5 tolerances (atol = rtol/1000)
    and Krylov tolerances, each end point against a reference (rtol 1e-9, Krylov 1e-12): what a
    step costs at each accuracy. The reference alone takes ~13 minutes on 2 cores."""
    X, Y = fc.nn.digits()
    net = fc.nn.mlp(X, Y, widths=(256, 256), activation="tanh", loss="cross_entropy", seed=0)
    th = fc.descend(net.loss, net.theta0[None], fc.GD(0.5), 10).iterates[0, -1]
    h = 2.5 / fc.nn.top_eigenpairs(net.loss, th, 1)[0][0]

    def step(rtol, ktol):
        flow = fc.flows.pf(net.loss, h, krylov=fc.Krylov(ktol))
        t0 = time.perf_counter()
        sol = fc.solve(flow, th[None], t_span=(0, h), method=fc.Dopri5(rtol=rtol, atol=rtol * 1e-3))
        st = flow.impl.stats
        return sol.y[0, -1], {"rtol": rtol, "krylov_tol": ktol, "seconds": time.perf_counter() - t0,
                              "status": fc.Status(int(sol.status[0])).name, "evaluations": int(sol.nfev[0]),
                              "hvps": int(st["hvps"]), "krylov_median": float(np.median(st["dims"]))}
    ref, row = step(1e-9, 1e-12)
    rows = [dict(row, error_of_step=0.0)]
    print(f"  reference: {row['seconds']:.0f} s, {row['hvps']} products", flush=True)
    for rtol, ktol in settings:
        end, row = step(rtol, ktol)
        rows.append(dict(row, error_of_step=float(np.linalg.norm(end - ref) / np.linalg.norm(ref - th))))
        print(f"  rtol {rtol:g}, Krylov {ktol:g}: {row['seconds']:.0f} s", flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--accuracy", action="store_true", help="only (3): the digits MLP's PF step at several "
                    "tolerances against a tight reference (about 25 minutes)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--scale-only", action="store_true", help="only (2), the matrix-free PF at D ≈ 10⁵")
    ap.add_argument("--networks", default="mlp,cnn", help="(2)'s networks: mlp, cnn or both (default mlp,cnn)")
    args = ap.parse_args()
    if args.accuracy:
        rows = pf_step_accuracy()
        print(table(rows, ["rtol", "krylov_tol", "seconds", "status", "evaluations", "hvps", "krylov_median",
                           "error_of_step"]))
        print(f"wrote {write_json('nn_accuracy', rows)}")
        return
    if args.scale_only:
        scale = pf_at_scale(tuple(args.networks.split(",")))
        print(table(scale, ["network", "D", "seconds", "status", "evaluations", "hvps", "krylov_median", "krylov_max"]))
        print(f"wrote {write_json('nn_scale', scale)}")
        return
    import jax.numpy as jnp
    pf = pf_dense_vs_matrix_free(1 if args.quick else 3)
    print(f"(1) PF one GD step, Iris MLP D = {pf['dim']} (h = 1, iterate 30, hλ_max = {pf['hlam_max']:.2f}): dense "
          f"{pf['dense']:.2f} s, matrix-free {pf['matrix-free']:.3f} s, ratio {pf['matrix-free'] / pf['dense']:.3f}; "
          f"Krylov dimension median {pf['krylov_dims'][0]}, max {pf['krylov_dims'][1]}, "
          f"{pf['hvps_per_evaluation']:.1f} Hessian–vector products an evaluation; relative difference "
          f"{pf['difference']:.1e}")
    scale = [] if args.quick else pf_at_scale()
    if scale:
        print("(2) matrix-free PF, one GD step at hλ_max = 2.5 (dopri5, rtol 1e-6):")
        print(table(scale, ["network", "D", "seconds", "status", "evaluations", "hvps", "krylov_median", "krylov_max"]))
    h = 0.2
    net = fc.nn.mlp(*fc.nn.iris(), widths=(10, 10, 10, 10), activation="tanh", loss="cross_entropy", seed=0)
    th = fc.descend(net.loss, net.theta0[None], fc.GD(h), 150).iterates[0, -1]
    fn = net.loss.functions[0].__self__.fn
    rep = 1 if args.quick else 3
    rows = []
    t_hess = median_time(lambda: net.loss.hess(th[None]), repeats=rep)
    H = net.loss.hess(th[None])[0]
    t_eigh = median_time(lambda: np.linalg.eigh(H), repeats=rep)
    t_lanczos = median_time(lambda: fc.nn.top_eigenpairs(net.loss, th, 1), repeats=rep)
    fc_end, t_flow = {}, {}
    for name in ("ngf", "igr", "pf"):
        flow = fc.models.model(name).build(net.loss, h)
        run = lambda: fc.solve(flow, th[None], t_span=(0, h), method=fc.Dop853(rtol=1e-7, atol=1e-10))   # noqa: E731
        t_flow[name] = median_time(run, repeats=rep, min_time=0.0)
        fc_end[name] = run().y[0, -1]
    hess, eigh, steps = jax_only(fn, net.dim, h)
    thj = jnp.asarray(th)
    j_hess = median_time(lambda: hess(thj).block_until_ready(), repeats=rep)
    Hj = hess(thj)
    j_eigh = median_time(lambda: eigh(Hj)[0].block_until_ready(), repeats=rep)
    j_end, j_flow = {}, {}
    for name, f in steps.items():
        j_flow[name] = median_time(lambda f=f: np.asarray(f(thj)), repeats=rep, min_time=0.0)
        j_end[name] = np.asarray(f(thj))
    for part, a, b in (("Hessian", t_hess, j_hess), ("eigendecomposition", t_eigh, j_eigh),
                       ("NGF one step", t_flow["ngf"], j_flow["ngf"]), ("IGR one step", t_flow["igr"], j_flow["igr"]),
                       ("PF one step", t_flow["pf"], j_flow["pf"])):
        rows.append({"part": part, "flowcore_s": a, "jax_only_s": b, "ratio": b / a})
    total_fc = t_hess + t_eigh + sum(t_flow.values())
    total_j = j_hess + j_eigh + sum(j_flow.values())
    rows.append({"part": "one analysed GD step", "flowcore_s": total_fc, "jax_only_s": total_j,
                 "ratio": total_j / total_fc})
    print(f"Iris MLP, D = {net.dim}, h = {h}, iterate 150 (λ₀ = {fc.nn.top_eigenpairs(net.loss, th, 1)[0][0]:.3f}, "
          f"2/h = {2 / h:g}); Lanczos sharpness alone: {t_lanczos * 1e3:.1f} ms")
    print(table(rows, ["part", "flowcore_s", "jax_only_s", "ratio"]))
    diff = {k: float(np.linalg.norm(np.real(fc_end[k]) - np.real(j_end[k]))) for k in fc_end}
    print("‖flowcore − JAX-only‖ of the one-step ends:", {k: f"{v:.1e}" for k, v in diff.items()})
    # Lanczos on a digits MLP with D ≈ 10⁵
    big = fc.nn.mlp(*fc.nn.digits(), widths=(256, 256), activation="tanh", loss="cross_entropy", seed=0)
    t_big = median_time(lambda: fc.nn.top_eigenpairs(big.loss, big.theta0, 1), repeats=1 if args.quick else 3,
                        min_time=0.0)
    lam = fc.nn.top_eigenpairs(big.loss, big.theta0, 1)[0][0]
    print(f"digits MLP 64→256→256→10, D = {big.dim}: Lanczos λ₀ = {lam:.4f} in {t_big:.2f} s")
    path = write_json("nn", rows, dim=net.dim, lanczos_iris_s=t_lanczos, one_step_difference=diff,
                      digits_dim=big.dim, digits_lanczos_s=t_big, digits_sharpness=float(lam),
                      pf_dense_vs_matrix_free=pf, pf_at_scale=scale)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
