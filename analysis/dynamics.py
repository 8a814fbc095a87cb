"""Long-run dynamics of GD: orbit diagrams with Lyapunov exponents, and basin entropy.

(The basins themselves, portraits and their figures are issue 7's remaining part.)
"""
import numpy as np

import flowcore as fc


def orbit_diagram(loss, lrs, theta0, transient=500, keep=100, escape_radius=1e6):
    """Late GD iterates against the learning rate, with the largest Lyapunov exponent.

    For each h in ``lrs``, GD runs from ``theta0`` for ``transient + keep`` steps; the last
    ``keep`` iterates are the orbit. The largest Lyapunov exponent is the mean growth rate of
    the product of map Jacobians J_n = I − h H(θ_n) along the orbit (QR re-orthonormalisation,
    so it equals log|1 − hλ| at a stable fixed point in 1-D). Escaped or non-finite runs give
    NaN orbits and exponents, with their status.

    Returns a dict: lrs [L], orbits [L, keep, D], lyapunov [L], status [L].
    """
    lrs = np.asarray(lrs, dtype=float).reshape(-1)
    if lrs.size == 0 or np.any(~np.isfinite(lrs)) or np.any(lrs <= 0):
        raise ValueError("lrs must be a non-empty array of finite learning rates > 0")
    th0 = np.asarray(theta0, dtype=float).reshape(1, -1)
    if th0.shape[1] != loss.dim:
        raise ValueError(f"theta0 must have {loss.dim} coordinates, got {th0.shape[1]}")
    if transient < 0 or keep < 1:
        raise ValueError("transient must be >= 0 and keep >= 1")
    D = loss.dim
    orbits = np.full((len(lrs), keep, D), np.nan)
    status = np.zeros(len(lrs), dtype=np.int8)
    for i, h in enumerate(lrs):
        run = fc.descend(loss, th0, h, transient + keep, escape_radius=escape_radius, threads=1)
        status[i] = run.status[0]
        if run.status[0] == fc.Status.OK:
            orbits[i] = run.iterates[0, transient + 1:]
    lyap = np.full(len(lrs), np.nan)
    ok = status == fc.Status.OK
    if np.any(ok):
        H = loss.hess(orbits[ok])                                   # [L', keep, D, D]
        J = np.eye(D) - lrs[ok, None, None, None] * H
        Q = np.broadcast_to(np.eye(D), (J.shape[0], D, D)).copy()
        total = np.zeros(J.shape[0])
        for n in range(keep):
            Q, R = np.linalg.qr(J[:, n] @ Q)
            with np.errstate(divide="ignore"):
                total += np.log(np.abs(R[:, 0, 0]))               # the leading direction
        lyap[ok] = total / keep
    return {"lrs": lrs, "orbits": orbits, "lyapunov": lyap, "status": status}


def basin_entropy(labels, box=5):
    """Basin entropy Sb and boundary basin entropy Sbb (Daza et al. 2016, natural log).

    The label image [ny, nx] is cut into box × box cells (incomplete edge boxes dropped); in
    box i with label fractions p_ij, S_i = −Σ_j p_ij ln p_ij. Sb is the mean of S_i over all
    boxes, Sbb the mean over the boxes that hold more than one label (NaN when there are none).
    Returns (Sb, Sbb, n_boundary_boxes).
    """
    L = np.asarray(labels)
    if L.ndim != 2:
        raise ValueError(f"labels must be a 2-D array [ny, nx], got shape {L.shape}")
    if not isinstance(box, (int, np.integer)) or box < 1 or box > min(L.shape):
        raise ValueError(f"box must be an integer in [1, {min(L.shape)}], got {box!r}")
    ny, nx = (L.shape[0] // box) * box, (L.shape[1] // box) * box
    blocks = L[:ny, :nx].reshape(ny // box, box, nx // box, box).swapaxes(1, 2).reshape(-1, box * box)
    S = np.zeros(len(blocks))
    for i, blk in enumerate(blocks):
        _, counts = np.unique(blk, return_counts=True)
        p = counts / counts.sum()
        S[i] = -np.sum(p * np.log(p))
    boundary = S > 0
    Sbb = float(S[boundary].mean()) if boundary.any() else float("nan")
    return float(S.mean()), Sbb, int(boundary.sum())
