"""Per-trajectory status codes (the values of flowcore/include/flowcore_abi.h's enum fc_status)."""
import enum


class Status(enum.IntEnum):
    """Why a trajectory stopped, or OK."""
    OK = 0               # finished (integrators: reached the end of the time span)
    ESCAPED = 1          # left the escape radius
    MAX_STEPS = 2        # step budget exhausted
    STEP_UNDERFLOW = 3   # adaptive step size fell below the resolution of t
    NONFINITE = 4        # a non-finite value (input, loss or field)
    SINGULAR = 5         # the principal flow met h·λ = 1 (log singularity)
    INTERRUPTED = 6      # stopped by Ctrl-C; partial result

    @classmethod
    def summary(cls, status):
        """'OK: 98, ESCAPED: 2' for an array of codes."""
        import numpy as np
        vals, counts = np.unique(np.asarray(status), return_counts=True)
        return ", ".join(f"{cls(int(v)).name}: {c}" for v, c in zip(vals, counts))


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run. ``partial`` holds what was computed: finished trajectories keep
    their results and statuses, the others have Status.INTERRUPTED. ``kept`` says what was written
    to disk and stays there (a sweep's finished chunks, the tour's finished figures), or None.
    Being a KeyboardInterrupt, it ends a script as Ctrl-C does unless caught."""

    def __init__(self, partial=None, what="the run", kept=None):
        where = kept if kept is not None else "the finished part is in .partial"
        super().__init__(f"{what} was interrupted (Ctrl-C); {where}")
        self.partial, self.kept = partial, kept
