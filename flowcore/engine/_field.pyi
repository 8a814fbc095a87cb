# Type stubs for the Cython module flowcore.engine._field (vector fields and the spectral flows).
from typing import Any, Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from flowcore.engine._loss import Loss

class Field:
    """A vector field θ' = f(θ) on C^D, evaluated at batches of points."""
    dim: int
    is_complex: bool
    nstate: int
    name: str
    def evaluate(self, theta: ArrayLike, state: NDArray[np.complex128] | None = None, *, threads: int | None = None
                 ) -> tuple[NDArray[np.inexact], NDArray[np.intc]]: ...
    def __call__(self, theta: ArrayLike, state: NDArray[np.complex128] | None = None) -> NDArray[np.inexact]: ...
    def branch_state(self, theta: ArrayLike) -> NDArray[np.complex128]: ...
    def accept(self, theta: ArrayLike, state: NDArray[np.complex128]) -> NDArray[np.intc]: ...
    @staticmethod
    def from_expr(exprs: Sequence[str | Any], vars: Sequence[str] | None = None, name: str | None = None,
                  max_ops: int | None = 5000) -> Field: ...
    @staticmethod
    def from_callable(f: Callable[..., Any], *, dim: int, vectorized: bool = False,
                      name: str = "python field") -> Field: ...

class SpectralFlow(Field):
    """θ' = α(hH) g + c·T[g, g]: the spectral flows of Rosca et al. (2023)."""
    loss: Loss
    lr: float
    kind: str
    np_coef: float
    @property
    def coefficients(self) -> NDArray[np.float64] | None: ...
