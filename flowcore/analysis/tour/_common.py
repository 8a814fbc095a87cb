"""What the tour's items share: axis labels and contour plots."""
import numpy as np


from flowcore.analysis.plot import coordinate_label


NORM_STEP_ERROR = r"$\Vert\theta_{n+1} - \varphi_h(\theta_n)\Vert$"


NORM_TRACK_ERROR = r"$\Vert\theta_n - \theta(nh)\Vert$"


def _contours(ax, loss, box, n=300):
    """Contours of a 2-D loss over ``box``, the axes named by the loss's variables. The levels skip
    the lowest 2 % of the values: a level just above a valley's floor breaks into fragments on
    the grid."""
    x, y = (np.linspace(lo, hi, n) for lo, hi in box)
    X, Y = np.meshgrid(x, y)
    E = loss.value(np.stack([X, Y], -1))
    ax.contour(x, y, E, levels=np.unique(np.quantile(E, 0.02 + 0.98 * np.linspace(0, 1, 22) ** 2)), cmap="viridis",
               linewidths=0.6)
    ax.set_xlabel(coordinate_label(loss.vars, 0, 2))
    ax.set_ylabel(coordinate_label(loss.vars, 1, 2))
