"""The results of the map drivers: :class:`Run` (``fc.descend``) and :class:`Rest`
(``fc.descend_to_rest``)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flowcore.engine._status import Status

__all__ = ["Run", "Rest"]


@dataclass(repr=False)
class Run:
    """Result of :func:`descend`.

    iterates [N, steps+1, D] (NaN after a trajectory stops), status [N] (Status codes),
    nsteps [N] (steps taken), lr: the learning rate used at each step — [N, steps] for
    scalar rates (constant for gd/heavy_ball/nesterov), [N, steps, D] for dal_per_param.
    """
    iterates: np.ndarray
    status: np.ndarray
    nsteps: np.ndarray
    lr: np.ndarray
    method: str
    saved: np.ndarray | None = None     # sgd with every > 1: the step of each stored iterate
    seed: int | None = None             # sgd: the seed (replay with seed=, ids=)
    last: np.ndarray | None = None      # sgd: the last iterate of each trajectory
    device: str = "cpu"                 # where it ran: 'cpu' or 'gpu'

    @property
    def final(self):
        """Last iterate of each trajectory (before it stopped) [N, D]."""
        if self.last is not None:
            return self.last
        idx = np.asarray(self.nsteps)
        return self.iterates[np.arange(len(idx)), idx]

    @property
    def message(self):
        return Status.summary(self.status)

    def __repr__(self):
        N, T, D = self.iterates.shape
        steps = T - 1 if self.saved is None else int(self.saved[-1])
        kept = "" if self.saved is None else f", {T} kept"
        return f"Run({self.method}: {N} starts × {steps} steps{kept} × D={D}; {self.message})"


@dataclass(repr=False)
class Rest:
    """Result of :func:`descend_to_rest`, per start: ``final`` [N, D] the last iterate, or for a
    start that settled on a p-cycle the cycle's lexicographically smallest point (the same point
    whatever the phase it was caught in); ``period`` [N] (1 a fixed point, p a cycle, 0 did not
    come to rest); ``status`` [N] (MAX_STEPS when the budget ran out first); ``nsteps`` [N]."""
    final: np.ndarray
    period: np.ndarray
    status: np.ndarray
    nsteps: np.ndarray
    method: str
    device: str = "cpu"

    def __repr__(self):
        N, D = self.final.shape
        cycles = int(np.sum(self.period > 1))
        return (f"Rest({self.method}: {N} starts, D={D}; {Status.summary(self.status)}; "
                f"{int(np.sum(self.period == 1))} at a fixed point, {cycles} on a cycle)")
