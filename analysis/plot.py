"""Figures (matplotlib, Agg): return the Figure; callers save it."""
import numpy as np


def _plt():
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt


def orbit_diagram(result, coordinate=0, title=None):
    """Late iterates against the learning rate (top) and the largest Lyapunov exponent (bottom)."""
    plt = _plt()
    fig, (ax, axl) = plt.subplots(2, 1, sharex=True, figsize=(7, 6), height_ratios=(3, 1.3))
    lrs, orbits = result["lrs"], result["orbits"][..., coordinate]
    keep = orbits.shape[1]
    ax.plot(np.repeat(lrs, keep), orbits.reshape(-1), ",", color="k", alpha=0.6)
    ax.set_ylabel(f"late iterates, θ[{coordinate}]")
    ax.set_title(title or "GD orbit diagram")
    axl.plot(lrs, result["lyapunov"], color="C3", lw=1, label="largest Lyapunov exponent")
    axl.axhline(0, color="0.5", lw=0.8)
    axl.set_xlabel("learning rate h")
    axl.set_ylabel("λ_max")
    axl.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig
