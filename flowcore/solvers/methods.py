"""Methods and settings as values: each owns exactly its parameters and checks them when made.

    fc.descend(loss, theta0, fc.HeavyBall(lr=0.05, beta=0.9), steps=200)
    fc.solve(flow, theta0, (0, 10), method=fc.Dopri5(rtol=1e-10))
    fa.basins(loss, fc.GD(0.1), grid, rest=fc.RestTest(tol=1e-12), compute=fc.Compute(threads=2))

A parameter that a method does not read cannot be given to it (``fc.GD(0.1, beta=0.9)`` is a
TypeError), so no run-time rule has to say "ignored". The command line's strings (``"gd"`` with
``--lr``) become these values in one place, :func:`method`.

* **Optimizers** (maps, run by :func:`flowcore.descend`): :class:`GD`, :class:`HeavyBall`,
  :class:`Nesterov`, :class:`DAL`, :class:`DALMomentum`, :class:`DALPerParam`, :class:`SGD`.
* **Continuous models** (flows with their learning rate h, and the integrator that runs them
  in a basin map or a sweep): :class:`NGF`, :class:`PGF`, :class:`IGR`, :class:`ThirdOrder`,
  :class:`BEA`, :class:`PF`. ``.build(loss)`` gives the :class:`flowcore.Field`.
* **Integrators** (:func:`flowcore.solve`): :class:`Adaptive` (``Dopri5``, ``Dop853``) and
  :class:`FixedStep` (``Euler``, ``Midpoint``, ``Heun``, ``RK4``), each over a Butcher tableau
  (:mod:`flowcore.engine.tableaux`); SDE schemes :class:`EulerMaruyama`, :class:`Weak2`.
* **Settings**: :class:`RestTest` (when a run is at rest, and its budget), :class:`Compute`
  (device, threads, chunking).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from flowcore.engine.checks import INT32_MAX, MAX_THREADS, count, positive
from flowcore.engine.krylov import Krylov, krylov_setting
from flowcore.engine.tableaux import TABLEAUX, Tableau

__all__ = ["GD", "HeavyBall", "Nesterov", "DAL", "DALMomentum", "DALPerParam", "SGD",
           "NGF", "PGF", "IGR", "ThirdOrder", "BEA", "PF",
           "Adaptive", "FixedStep", "Dopri5", "Dop853", "Euler", "Midpoint", "Heun", "RK4",
           "EulerMaruyama", "Weak2", "RestTest", "Compute", "method", "METHODS", "Optimizer", "Flow"]


def _set(obj, name, value):
    object.__setattr__(obj, name, value)        # frozen dataclasses: set the checked value once


def _rate(value, label="lr"):
    """One learning rate (a float) or one per start (a read-only 1-D array), each finite and > 0."""
    if isinstance(value, (bool, np.bool_, str)) or value is None:
        raise TypeError(f"{label} must be a number or a 1-D array of numbers (one per start), got {value!r}")
    a = np.asarray(value)
    if a.ndim == 0:
        return positive(value, label)
    if a.ndim != 1 or a.size == 0 or not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
        raise ValueError(f"{label} must be one real number or a 1-D array of them (one per start), "
                         f"got shape {a.shape}")
    a = np.array(a, dtype=np.float64)
    if not np.all(np.isfinite(a) & (a > 0)):
        raise ValueError(f"every learning rate in {label} must be finite and > 0")
    a.flags.writeable = False
    return a


def _beta(value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0 <= value < 1:
        raise ValueError(f"beta must be a number in [0, 1) (the momentum), got {value!r}")
    return float(value)


def _cap(value):
    return None if value is None else positive(value, "lr_cap (None: no cap)")


def _short(v):
    if isinstance(v, np.ndarray):
        return f"[{v.size} rates]"
    return repr(v)


class _Value:
    """The short repr shared by the values: their class and the fields that differ from the default."""

    def __repr__(self):
        parts = []
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.default_factory is not dataclasses.MISSING:
                same = repr(v) == repr(f.default_factory())
            else:
                same = f.default is not dataclasses.MISSING and (
                    v is f.default or (not isinstance(v, np.ndarray) and v == f.default))
            if not same:
                parts.append(f"{f.name}={_short(v)}")
        return f"{type(self).__name__}({', '.join(parts)})"


# ---------------------------------------------------------------- optimizers (maps)

class Optimizer(_Value):
    """A discrete optimizer. ``name``: its kernel's name; ``kind``: 'map'."""
    name: ClassVar[str]
    kind: ClassVar[str] = "map"
    uses_lr: ClassVar[bool] = True

    @property
    def momentum(self) -> float:
        """β as the kernels read it (0 for the methods without momentum)."""
        return getattr(self, "beta", 0.0)

    @property
    def rate_power(self) -> float:
        return getattr(self, "power", 1.0)

    @property
    def rate_cap(self) -> float:
        """DAL's cap as the kernels read it (0: none)."""
        return float(getattr(self, "lr_cap", None) or 0.0)

    def with_lr(self, lr):
        """The same method at another learning rate (a sweep's 'lr' axis)."""
        if not self.uses_lr:
            raise ValueError(f"{type(self).__name__} sets its own rate (2/‖Hĝ‖^p): it has no lr to sweep")
        return dataclasses.replace(self, lr=lr)


@dataclass(frozen=True, repr=False, eq=False)
class GD(Optimizer):
    """Gradient descent θ⁺ = θ − h g, h = ``lr`` (one rate, or one per start)."""
    lr: float | np.ndarray
    name: ClassVar[str] = "gd"

    def __post_init__(self):
        _set(self, "lr", _rate(self.lr))


@dataclass(frozen=True, repr=False, eq=False)
class HeavyBall(Optimizer):
    """Polyak's heavy ball θ⁺ = θ − h g + β(θ − θ⁻)."""
    lr: float | np.ndarray
    beta: float = 0.9
    name: ClassVar[str] = "heavy_ball"

    def __post_init__(self):
        _set(self, "lr", _rate(self.lr))
        _set(self, "beta", _beta(self.beta))


@dataclass(frozen=True, repr=False, eq=False)
class Nesterov(HeavyBall):
    """Nesterov's momentum: y = θ + β(θ − θ⁻), θ⁺ = y − h g(y) (heavy ball's parameters)."""
    name: ClassVar[str] = "nesterov"


@dataclass(frozen=True, repr=False, eq=False)
class DAL(Optimizer):
    """DAL-p: θ⁺ = θ − h(θ) g with h(θ) = 2/‖H ĝ‖^p (ĝ = g/‖g‖; p = ``power``, p = 1 is DAL),
    capped at ``lr_cap`` when given. It sets its own rate: there is no lr."""
    power: float = 1.0
    lr_cap: float | None = None
    name: ClassVar[str] = "dal"
    uses_lr: ClassVar[bool] = False

    def __post_init__(self):
        _set(self, "power", positive(self.power, "power (the p of DAL-p)"))
        _set(self, "lr_cap", _cap(self.lr_cap))


@dataclass(frozen=True, repr=False, eq=False)
class DALMomentum(Optimizer):
    """Heavy ball with the DAL-p rate: θ⁺ = θ − h(θ) g + β(θ − θ⁻)."""
    beta: float = 0.9
    power: float = 1.0
    lr_cap: float | None = None
    name: ClassVar[str] = "dal_momentum"
    uses_lr: ClassVar[bool] = False

    def __post_init__(self):
        _set(self, "beta", _beta(self.beta))
        _set(self, "power", positive(self.power, "power (the p of DAL-p)"))
        _set(self, "lr_cap", _cap(self.lr_cap))


@dataclass(frozen=True, repr=False, eq=False)
class DALPerParam(DAL):
    """Each coordinate its own rate h_a = 2/|(H ĝ)_a|^p (capped at ``lr_cap``; DAL's parameters)."""
    name: ClassVar[str] = "dal_per_param"


@dataclass(frozen=True, repr=False, eq=False)
class SGD(Optimizer):
    """Minibatch SGD with heavy-ball momentum on a loss over data (E = (1/n) Σ_k ℓ_k):
    v⁺ = β v − h ĝ_B(θ), θ⁺ = θ + v⁺, ĝ_B the mean of ∇ℓ_k over ``batch`` examples drawn with
    replacement (``replace=True``) or, without, along a fresh permutation every epoch of ⌊n/B⌋
    steps. Random numbers from Philox keyed by (``seed``, run id): run i uses ``ids[i]``
    (default i), so ``seed=run.seed, ids=[i]`` replays run i. ``every``: keep every k-th
    iterate (and the last)."""
    lr: float | np.ndarray
    batch: int = 1
    beta: float = 0.0
    replace: bool = True
    seed: int | None = None
    ids: tuple | None = None
    every: int = 1
    name: ClassVar[str] = "sgd"

    def __post_init__(self):
        _set(self, "lr", _rate(self.lr))
        _set(self, "batch", count(self.batch, "batch (examples per step)", 1, INT32_MAX))
        _set(self, "beta", _beta(self.beta))
        if not isinstance(self.replace, (bool, np.bool_)):
            raise TypeError(f"replace must be True (draw with replacement) or False (epochs), got {self.replace!r}")
        if self.seed is not None and (isinstance(self.seed, (bool, np.bool_)) or not isinstance(
                self.seed, (int, np.integer)) or not 0 <= self.seed < 2**128):
            raise ValueError(f"seed must be an integer in [0, 2**128) or None (a fresh one), got {self.seed!r}")
        if self.ids is not None:
            ids = np.asarray(self.ids)
            if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer) or np.any(ids < 0):
                raise ValueError("ids must be a 1-D array of run ids ≥ 0 (one per start)")
            _set(self, "ids", tuple(int(i) for i in ids))
        _set(self, "every", count(self.every, "every (keep every k-th iterate)", 1, INT32_MAX))


# ---------------------------------------------------------------- integrators

def _tableau(tableau):
    tab = tableau if isinstance(tableau, Tableau) else TABLEAUX.get(tableau)
    if tab is None:
        raise ValueError(f"tableau must be one of {sorted(TABLEAUX)} or a flowcore.engine.tableaux.Tableau, got {tableau!r}")
    if not tab.explicit:
        raise ValueError(f"the tableau {tab.name!r} is implicit (A is not strictly lower triangular); "
                         "fc.solve runs explicit methods only")
    return tab


@dataclass(frozen=True, repr=False, eq=False)
class Adaptive(_Value):
    """An embedded Runge–Kutta pair with per-trajectory PI step control (Hairer's initial step
    unless ``dt0``), the error norm on |·| so complex states work. ``dense``: outputs from the
    continuous extension when the tableau has one (so dense t_eval costs no steps); otherwise
    steps land on each output time. ``max_steps``: accepted steps per trajectory."""
    tableau: Tableau | str = "dopri5"
    rtol: float = 1e-8
    atol: float = 1e-10
    dt0: float | None = None
    dense: bool = True
    max_steps: int = 1_000_000

    def __post_init__(self):
        tab = _tableau(self.tableau)
        if not tab.adaptive:
            raise ValueError(f"{tab.name!r} has no error estimate: use fc.FixedStep({tab.name!r}, dt=...)")
        _set(self, "tableau", tab)
        _set(self, "rtol", positive(self.rtol, "rtol"))
        _set(self, "atol", positive(self.atol, "atol"))
        if self.dt0 is not None:
            _set(self, "dt0", positive(self.dt0, "dt0 (the first step; None: Hairer's estimate)"))
        _set(self, "max_steps", count(self.max_steps, "max_steps", 1, 2**62))

    @property
    def name(self):
        return self.tableau.name

    def __repr__(self):
        return _integrator_repr(self)


@dataclass(frozen=True, repr=False, eq=False)
class FixedStep(_Value):
    """A fixed-step explicit Runge–Kutta method with step ``dt`` (the last step shortened to land
    on each output time)."""
    tableau: Tableau | str
    dt: float
    max_steps: int = 1_000_000

    def __post_init__(self):
        _set(self, "tableau", _tableau(self.tableau))
        _set(self, "dt", positive(self.dt, "dt (the step)"))
        _set(self, "max_steps", count(self.max_steps, "max_steps", 1, 2**62))

    @property
    def name(self):
        return self.tableau.name

    def __repr__(self):
        return _integrator_repr(self)


_SHORT = {"dopri5": "Dopri5", "dop853": "Dop853", "euler": "Euler", "midpoint": "Midpoint", "heun": "Heun",
          "rk4": "RK4"}


def _integrator_repr(m):
    """``Dopri5(rtol=1e-06)`` for a named tableau, ``Adaptive(<tableau>, ...)`` for another."""
    text = _Value.__repr__(m)
    short = _SHORT.get(m.tableau.name)
    if short and TABLEAUX.get(m.tableau.name) is m.tableau:
        return text.replace(f"{type(m).__name__}(tableau={m.tableau!r}", short + "(").replace("(, ", "(")
    return text.replace(f"tableau={m.tableau!r}", repr(m.tableau.name))


def Dopri5(rtol=1e-8, atol=1e-10, dt0=None, dense=True, max_steps=1_000_000) -> Adaptive:
    """Dormand–Prince 5(4) with its 4th-order continuous extension."""
    return Adaptive("dopri5", rtol, atol, dt0, dense, max_steps)


DOPRI5 = Dopri5()


def Dop853(rtol=1e-8, atol=1e-10, dt0=None, max_steps=1_000_000) -> Adaptive:
    """Hairer's DOP853 (8th order, 5th/3rd-order error estimators); steps land on output times."""
    return Adaptive("dop853", rtol, atol, dt0, True, max_steps)


def Euler(dt, max_steps=1_000_000) -> FixedStep:
    """Explicit Euler with step ``dt``."""
    return FixedStep("euler", dt, max_steps)


def Midpoint(dt, max_steps=1_000_000) -> FixedStep:
    """The explicit midpoint rule with step ``dt``."""
    return FixedStep("midpoint", dt, max_steps)


def Heun(dt, max_steps=1_000_000) -> FixedStep:
    """Heun's method (explicit trapezoid) with step ``dt``."""
    return FixedStep("heun", dt, max_steps)


def RK4(dt, max_steps=1_000_000) -> FixedStep:
    """The classical 4th-order Runge–Kutta method with step ``dt``."""
    return FixedStep("rk4", dt, max_steps)


@dataclass(frozen=True, repr=False, eq=False)
class EulerMaruyama(_Value):
    """Euler–Maruyama for dθ = b dt + σ dW with step ``dt`` (strong order ½, weak order 1)."""
    dt: float
    name: ClassVar[str] = "euler_maruyama"

    def __post_init__(self):
        _set(self, "dt", positive(self.dt, "dt (the step)"))


@dataclass(frozen=True, repr=False, eq=False)
class Weak2(_Value):
    """A weak order-2 scheme (Milstein–Talay with three-point noise) with step ``dt``."""
    dt: float
    name: ClassVar[str] = "weak2"

    def __post_init__(self):
        _set(self, "dt", positive(self.dt, "dt (the step)"))


# ---------------------------------------------------------------- continuous models (flows)

class Flow(_Value):
    """A continuous model of GD with learning rate h = ``lr``, run by ``solver`` (to ``t_max``
    in a basin map or sweep; None: the time of the run's step budget, steps·h)."""
    name: ClassVar[str]
    kind: ClassVar[str] = "flow"
    uses_lr: ClassVar[bool] = True

    def _checked(self):
        _set(self, "lr", positive(self.lr, "lr (the h the flow models)"))
        if not isinstance(self.solver, (Adaptive, FixedStep)):
            raise TypeError(f"solver must be an integrator (fc.Dopri5(), fc.RK4(dt) ...), got {self.solver!r}")
        if self.t_max is not None:
            _set(self, "t_max", positive(self.t_max, "t_max (None: steps·lr)"))

    def build_options(self) -> dict:
        """What :meth:`flowcore.problems.models.Model.build` reads beyond (loss, lr)."""
        return {}

    def with_lr(self, lr):
        return dataclasses.replace(self, lr=lr)


@dataclass(frozen=True, repr=False, eq=False)
class NGF(Flow):
    """Negative gradient flow θ' = −g."""
    lr: float
    solver: Adaptive | FixedStep = dataclasses.field(default_factory=Dopri5)
    t_max: float | None = None
    name: ClassVar[str] = "ngf"

    def __post_init__(self):
        self._checked()


@dataclass(frozen=True, repr=False, eq=False)
class PGF(NGF):
    """Positive gradient flow θ' = +g (the paper's §5: GD's unstable directions follow it)."""
    name: ClassVar[str] = "pgf"


@dataclass(frozen=True, repr=False, eq=False)
class IGR(NGF):
    """Implicit gradient regularisation θ' = −(I + hH/2) g."""
    name: ClassVar[str] = "igr"


@dataclass(frozen=True, repr=False, eq=False)
class ThirdOrder(NGF):
    """GD's modified equation to O(h³): θ' = −g − (h/2)Hg − h²((1/3)H²g + (1/12)T[g, g])."""
    name: ClassVar[str] = "third_order"


@dataclass(frozen=True, repr=False, eq=False)
class BEA(Flow):
    """The principal BEA truncation of order n: θ' = −Σ_{p≤n} (hH)^p g/(p+1)."""
    lr: float
    order: int
    solver: Adaptive | FixedStep = dataclasses.field(default_factory=Dopri5)
    t_max: float | None = None
    name: ClassVar[str] = "bea"

    def __post_init__(self):
        self._checked()
        _set(self, "order", count(self.order, "order (of the BEA truncation)", 0, 64))

    def build_options(self):
        return {"order": self.order}


@dataclass(frozen=True, repr=False, eq=False)
class PF(Flow):
    """The principal flow θ' = log(I − hH)/(hH)·g (``nonprincipal``: plus −(h²/12)T[g, g], the
    paper's PF + NP3), its log continued along each trajectory (``branch='track'``) or principal
    at every evaluation (``'principal'``); ``krylov``: matrix-free (True or a :class:`Krylov`
    with its tolerance; None: for networks above fc.nn.KRYLOV_MIN_DIM parameters)."""
    lr: float
    nonprincipal: bool = False
    branch: str = "track"
    krylov: bool | Krylov | None = None
    solver: Adaptive | FixedStep = dataclasses.field(default_factory=Dopri5)
    t_max: float | None = None

    def __post_init__(self):
        self._checked()
        if self.branch not in ("track", "principal"):
            raise ValueError(f"branch must be 'track' or 'principal', got {self.branch!r}")
        if not isinstance(self.nonprincipal, (bool, np.bool_)):
            raise TypeError(f"nonprincipal must be True or False, got {self.nonprincipal!r}")
        _set(self, "krylov", krylov_setting(self.krylov))

    @property
    def name(self):
        return "pf_np3" if self.nonprincipal else "pf"

    def build_options(self):
        return {"branch": self.branch, "krylov": self.krylov}


# ---------------------------------------------------------------- settings

@dataclass(frozen=True, repr=False, eq=False)
class RestTest(_Value):
    """When a run is at rest, and how long it may take to get there.

    Maps: at rest once a recurrence ‖θ_k − θ_{k−p}‖∞ ≤ tol(1 + ‖θ_k‖∞) with p ≤ ``max_period``
    has held at ``confirm`` consecutive iterations (default tol 1e-10). Flows: ‖θ'‖∞ ≤ tol(1 +
    ‖θ‖∞) at the end (default 1e-5, above the integrator's noise floor near a stiff rest point).
    ``steps``: the iteration budget (a flow runs to its t_max, by default steps·h).
    ``escape_radius``: a run with ‖θ‖ beyond it stops as ESCAPED."""
    tol: float | None = None
    max_period: int = 16
    confirm: int = 50
    steps: int = 1000
    escape_radius: float = 1e6

    def __post_init__(self):
        if self.tol is not None:
            _set(self, "tol", positive(self.tol, "tol"))
        _set(self, "max_period", count(self.max_period, "max_period", 1, 1024))
        _set(self, "confirm", count(self.confirm, "confirm (iterations a recurrence must hold)", 1, INT32_MAX))
        _set(self, "steps", count(self.steps, "steps (the iteration budget)", 1, INT32_MAX - 1))
        if self.escape_radius != np.inf:
            _set(self, "escape_radius", positive(self.escape_radius, "escape_radius"))

    def tol_for(self, kind):
        return self.tol if self.tol is not None else 1e-10 if kind == "map" else 1e-5


@dataclass(frozen=True, repr=False, eq=False)
class Compute(_Value):
    """Where and how work runs. ``device``: 'cpu', 'gpu' or None (the GPU when one is usable and
    there are at least 10⁴ starts); ``threads``: OpenMP threads (None: all cores; results do
    not depend on it); ``chunk``: starts per chunk (None: each driver's default; a progress bar
    and Ctrl-C act between chunks), or for :func:`flowcore.analysis.sweep` {axis: length};
    ``workers``: a sweep's chunks at a time in this process."""
    device: str | None = None
    threads: int | None = None
    chunk: int | dict | None = None
    workers: int = 1

    def __post_init__(self):
        if self.device not in (None, "cpu", "gpu"):
            raise ValueError(f"device must be 'cpu', 'gpu' or None (the GPU when usable), got {self.device!r}")
        if self.threads is not None:
            _set(self, "threads", count(self.threads, "threads (None: all cores)", 1, MAX_THREADS))
        if self.chunk is not None and not isinstance(self.chunk, dict):
            _set(self, "chunk", count(self.chunk, "chunk (starts per chunk)", 1, INT32_MAX))
        _set(self, "workers", count(self.workers, "workers (chunks at a time in this process)", 1, 1024))

    def chunk_or(self, default):
        return default if self.chunk is None or isinstance(self.chunk, dict) else self.chunk


COMPUTE = Compute()

# ---------------------------------------------------------------- the one place names become values

METHODS = dict((
    ("gd", GD), ("heavy_ball", HeavyBall), ("nesterov", Nesterov), ("dal", DAL), ("dal_momentum", DALMomentum),
    ("dal_per_param", DALPerParam), ("sgd", SGD), ("ngf", NGF), ("pgf", PGF), ("igr", IGR),
    ("third_order", ThirdOrder), ("bea", BEA), ("pf", PF), ("pf_np3", PF)))


def method(name: str, **params):
    """The value a shorthand names: ``method("heavy_ball", lr=0.1, beta=0.5)`` is
    ``HeavyBall(0.1, 0.5)``; ``"pf_np3"`` is ``PF(..., nonprincipal=True)``. A parameter the
    method does not read is refused by name."""
    if isinstance(name, (Optimizer, Flow)):
        if params:
            raise TypeError(f"{name!r} is already a method value; set its parameters when making it")
        return name
    cls = METHODS.get(name)
    if cls is None:
        import difflib
        close = difflib.get_close_matches(str(name), METHODS, n=2)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise ValueError(f"unknown method {name!r}{hint} (methods: {', '.join(METHODS)})")
    if name == "pf_np3":
        params = {**params, "nonprincipal": True}
    own = {f.name for f in dataclasses.fields(cls)}
    extra = sorted(set(params) - own)
    if extra:
        raise TypeError(f"{name} does not read {', '.join(extra)} (its parameters: {', '.join(sorted(own))})")
    return cls(**params)
