"""Sweeps: a grid over named axes × the outcome of every start, in chunks that are Dask tasks,
each written to a Zarr store as it finishes, returned as a labelled xarray Dataset.

A sweep runs a model (a GD-type map or a flow, as in :func:`flowcore.analysis.basins`) from
every point of a grid whose axes are named:

* ``lr``: learning rates;  ``x``, ``y``: the start origin + x·u + y·v (``directions`` (u, v),
  default e₀, e₁; ``origin`` default 0);  ``model``: model names;
* any other name: a parameter of the loss, which is then a function of those parameters
  (``loss=lambda b: fc.losses.rosenbrock(b=b)``).

Every start gets the outcomes of :data:`OUTPUTS`. The label is decided per start, against the
critical points of E listed once before the sweep, so that it does not depend on how the grid
is cut: k ≥ 0 is "came to rest at critical point k" (``ds.attrs['critical_points']``), and
negative labels are the other outcomes (:data:`LABELS`).

The store remembers which chunks are complete: each chunk's arrays are written, then their
SHA-256 (keyed by the digest of the sweep's definition), last, in an array of its own. A rerun
reads every chunk back, checks it against its digest, and computes only those that are missing,
torn, corrupted or foreign; a different definition is refused unless ``overwrite=True``.
"""
import difflib
import hashlib
import itertools
import json
import os
import shutil
import threading
import time
from dataclasses import dataclass

import numpy as np

import flowcore as fc
from flowcore.analysis.basins import (ESCAPED, FLOWS, MAPS, MATCHING, NONFINITE, REST, SINGULAR, UNRESOLVED, _SPECIAL,
                                      Matching, _axis, _critical, _plane, checked_method, run_to_rest)
from flowcore.engine.checks import INT32_MAX, count, positive
from flowcore.engine.tableaux import TABLEAUX
from flowcore.solvers.methods import COMPUTE, Flow, Optimizer
from flowcore.engine.progress import Progress

CYCLE, OFF_CRITICAL = -5, -6
LABELS = {ESCAPED: "escaped", UNRESOLVED: "unresolved (budget spent)", SINGULAR: "singular (hλ = 1)",
          NONFINITE: "non-finite", CYCLE: "cycle (its period in 'period')",
          OFF_CRITICAL: "at rest, but not at a real critical point of those listed"}
OUTPUTS = {   # name: (dtype, fill value, meaning)
    "label": ("int64", -100, "k ≥ 0: at rest at critical point k; negative: see label_meanings"),
    "status": ("int8", -100, "flowcore.Status of the run (OK: at rest)"),
    "nsteps": ("int64", -1, "map iterations, or a flow's accepted steps"),
    "period": ("int32", -1, "period of the cycle at rest (1: fixed point; 0: not at rest)"),
    "escape_time": ("float64", np.nan, "iteration at which a map left escape_radius (NaN otherwise; "
                                       "flows do not report it)"),
    "imag_residual": ("float64", np.nan, "PF: max|Im θ| at rest (0 for real models)"),
    "final": ("float64", np.nan, "the last state (real part), one value per coordinate"),
}
START_AXES = ("x", "y")
CHUNK_STARTS = 1 << 16        # default: about this many starts per chunk
DIGEST = "chunk_sha256"       # the array of chunk digests, written after each chunk's data


@dataclass(frozen=True)
class Plan:
    """Everything a chunk needs, sent to the workers (small: axes and settings, no data)."""
    dims: tuple                # axis names, in the Dataset's order
    coords: dict               # name -> 1-D array (model names for 'model')
    params: tuple              # the axes that are loss parameters
    model: str | None          # the model, when there is no 'model' axis
    lr: float | None           # the learning rate, when there is no 'lr' axis
    origin: np.ndarray
    directions: np.ndarray
    outputs: tuple
    chunks: tuple              # chunk length along each axis
    settings: dict             # run_to_rest's keywords, and the labelling tolerances
    critical: tuple            # per loss: the critical points [K, D] labels refer to
    digest: str                # of the definition: what a store's chunks must have been made by

    @property
    def shape(self):
        return tuple(len(self.coords[d]) for d in self.dims)

    @property
    def grid(self):
        """The number of chunks along each axis."""
        return tuple(-(-n // c) for n, c in zip(self.shape, self.chunks))

    def region(self, index):
        return tuple(slice(i * c, min(n, (i + 1) * c)) for i, c, n in zip(index, self.chunks, self.shape))

    def loss_index(self, region):
        """Which loss of the parameter grid a chunk uses (one per chunk: parameters are chunked by 1)."""
        ix = [region[self.dims.index(p)].start for p in self.params]
        return int(np.ravel_multi_index(ix, [len(self.coords[p]) for p in self.params])) if ix else 0


# --------------------------------------------------------------------------------- one chunk
def compute_chunk(plan, loss, index, threads=None, device=None):
    """The outcomes of one chunk: {output: array of the chunk's shape (+ [D] for 'final')}."""
    region = plan.region(index)
    sub = [plan.coords[d][r] for d, r in zip(plan.dims, region)]
    shape = tuple(len(s) for s in sub)
    model = plan.model or str(sub[plan.dims.index("model")][0])
    D, N = loss.dim, int(np.prod(shape))

    def along(name):            # an axis's values at every start of the chunk, [N]
        k = plan.dims.index(name)
        return np.broadcast_to(sub[k].reshape([-1 if j == k else 1 for j in range(len(shape))]), shape).reshape(-1)

    starts = np.empty((N, D))
    starts[:] = plan.origin
    for name, u in zip(START_AXES, plan.directions):
        if name in plan.dims:
            starts += along(name)[:, None] * u
    lr = along("lr") if "lr" in plan.dims else np.full(N, np.nan if plan.lr is None else plan.lr)
    s = plan.settings
    rest_test = fc.RestTest(s["tol"], s["max_period"], s["confirm"], s["steps"], s["escape_radius"])
    compute = fc.Compute(device=device, threads=threads)
    if model in MAPS:           # a map takes one learning rate per start: one call
        final, status, nsteps, period, rest, imag = run_to_rest(loss, method_value(model, lr, s), starts, rest_test,
                                                                compute, progress=False)
    else:                       # a flow is built for one learning rate: a call per rate
        parts = []
        for h in np.unique(lr):
            sel = np.flatnonzero(lr == h)
            parts.append((sel, run_to_rest(loss, method_value(model, float(h), s), starts[sel], rest_test, compute,
                                           progress=False)))
        final = np.empty((N, D), parts[0][1][0].dtype)
        status, nsteps, period = np.empty(N, np.int8), np.empty(N, np.int64), np.empty(N, np.int32)
        rest, imag = np.empty(N, bool), np.empty(N)
        for sel, out in parts:
            final[sel], status[sel], nsteps[sel], period[sel], rest[sel], imag[sel] = out
    imag_tol, match_tol = s["imag_tol"], s["match_tol"]
    every = {"final": lambda: np.real(final),
             "label": lambda: _labels(final, status, period, rest, imag, plan.critical[plan.loss_index(region)],
                                      imag_tol, match_tol),
             "status": lambda: status, "nsteps": lambda: nsteps, "period": lambda: period, "imag_residual": lambda: imag,
             "escape_time": lambda: np.where(status == fc.Status.ESCAPED, nsteps, np.nan) if model in MAPS
             else np.full(N, np.nan)}
    out = {}
    for k in plan.outputs:
        a = every[k]()
        out[k] = np.asarray(a, OUTPUTS[k][0]).reshape(shape + a.shape[1:])
    return out


_STATUS_LABEL = np.full(256, UNRESOLVED, np.int64)     # the label of a start not at rest, by its status
for _st, _code in _SPECIAL.items():
    _STATUS_LABEL[int(_st)] = _code


def _labels(final, status, period, rest, imag, critical, imag_tol, match_tol):
    """Per start: the index of the critical point it rests at (∞-norm within match_tol, relative),
    CYCLE, OFF_CRITICAL, or the special outcome of its status."""
    label = _STATUS_LABEL[status.astype(np.uint8)]
    label[rest & (period > 1)] = CYCLE
    fixed = np.flatnonzero(rest & (period == 1))
    label[fixed] = OFF_CRITICAL
    left = fixed[imag[fixed] <= imag_tol]              # real rest points, not matched yet
    pts = np.real(final[left])
    for k, c in enumerate(critical):
        d = np.abs(pts[:, 0] - c[0])
        for j in range(1, len(c)):
            np.maximum(d, np.abs(pts[:, j] - c[j]), out=d)
        near = d <= match_tol * (1 + np.max(np.abs(c)))
        label[left[near]] = k
        left, pts = left[~near], pts[~near]
    return label


# --------------------------------------------------------------------------------- the store
def _chunk_digest(plan, index, arrays):
    h = hashlib.sha256(plan.digest.encode())
    h.update(repr(tuple(index)).encode())
    for k in plan.outputs:
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return np.frombuffer(h.digest(), np.uint8)


def _read_region(group, plan, index):
    region = plan.region(index)
    return {k: group[k][region] for k in plan.outputs}


def write_chunk(path, plan, index, arrays):
    """Write one chunk's arrays, then its digest: a chunk whose digest is in the store and
    matches what is read back (checked on every rerun and by open_sweep) was written whole, by
    this definition. The arrays are written concurrently (zarr's asynchronous API)."""
    _in_loop(_write(path, plan, plan.region(index), {k: arrays[k] for k in plan.outputs}))
    _in_loop(_write(path, plan, tuple(index), {DIGEST: _chunk_digest(plan, index, arrays)}))


_LOOP = None           # (pid, event loop) for zarr's asynchronous writes, in a thread of this process
_ARRAYS = {}           # (store, definition digest, name) -> open zarr AsyncArray
_LOOP_LOCK = threading.Lock()


def _in_loop(coro):
    """Run a coroutine on the process's writer loop (started once: a loop per write would start
    and stop the thread pool zarr's file store works in)."""
    import asyncio
    global _LOOP
    with _LOOP_LOCK:
        if _LOOP is None or _LOOP[0] != os.getpid():      # a forked child has no loop thread
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="flowcore-sweep-zarr", daemon=True).start()
            _LOOP = (os.getpid(), loop)
            _ARRAYS.clear()
    return asyncio.run_coroutine_threadsafe(coro, _LOOP[1]).result()


async def _write(path, plan, region, arrays):
    import asyncio
    from zarr.api.asynchronous import open_array

    async def put(name, values):
        key = (path, plan.digest, name)
        if key not in _ARRAYS:
            _ARRAYS[key] = await open_array(store=path, path=name, mode="r+")
        await _ARRAYS[key].setitem(region, values)
    await asyncio.gather(*(put(k, v) for k, v in arrays.items()))


def chunk_is_complete(group, plan, index):
    """Whether a chunk in the store is whole and this definition's. Any failure to read or
    decode it (a torn or corrupted file) means no."""
    try:
        want = group[DIGEST][tuple(index)]
        return bool(np.array_equal(want, _chunk_digest(plan, index, _read_region(group, plan, index))))
    except Exception:          # noqa: BLE001: a chunk that cannot be read is not complete
        return False


def _is_sweep_store(path):
    try:
        with open(os.path.join(path, "zarr.json")) as f:
            return "flowcore_sweep" in json.load(f).get("attributes", {})
    except (OSError, ValueError):
        return False


def _writable_store(path):
    """Check before any work that ``store`` can be created (or is a sweep store) and written."""
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not (os.path.isdir(path) and (not os.listdir(path) or _is_sweep_store(path))):
        raise ValueError(f"store {path!r} exists and is not a flowcore sweep store; give a new path "
                         "(nothing there is overwritten)")
    parent = os.path.dirname(path)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"store {path!r}: cannot create the folder {parent!r} ({exc.strerror})") from None
    if not os.access(parent if not os.path.exists(path) else path, os.W_OK):
        raise ValueError(f"store {path!r} is not writable; give a path in a folder you can write")
    return path


def _open_store(path, plan, attrs, overwrite):
    """Create the store, or reopen it for this definition: (zarr group, complete chunk indices)."""
    import zarr
    if _is_sweep_store(path):
        group = zarr.open_group(path, mode="r+")
        stored = dict(group.attrs["flowcore_sweep"])
        old = str(stored.get("digest"))
        if old == plan.digest:
            _verified(path, stored)
            done = [ix for ix in itertools.product(*map(range, plan.grid)) if chunk_is_complete(group, plan, ix)]
            return group, done
        if not overwrite:
            raise ValueError(f"store {path!r} holds another sweep (definition digest {old[:12]}…, this one "
                             f"{plan.digest[:12]}…: a different loss, model, axes, settings, outputs or chunks); "
                             "pass overwrite=True to start over there, or give another store")
        shutil.rmtree(path)
    group = zarr.open_group(path, mode="w", zarr_format=3)
    group.attrs["flowcore_sweep"] = attrs
    D = attrs["dim"]
    for k in plan.outputs:
        dtype, fill, meaning = OUTPUTS[k]
        extra = ((D,), (D,), ("coord",)) if k == "final" else ((), (), ())
        # floats (final states, residuals) barely compress: stored raw, sparing the CPU that
        # the kernels need; labels, statuses and counts compress well (zstd)
        a = group.create_array(k, shape=plan.shape + extra[0], chunks=plan.chunks + extra[1], dtype=dtype,
                               fill_value=fill, dimension_names=plan.dims + extra[2],
                               compressors=None if dtype == "float64" else "auto")
        a.attrs["meaning"] = meaning
    for d in plan.dims:            # numeric coordinates as arrays too, for xarray.open_zarr
        if d != "model":
            c = group.create_array(d, shape=(len(plan.coords[d]),), dtype="float64", dimension_names=(d,),
                                   compressors=None)
            c[:] = plan.coords[d]
    group.create_array(DIGEST, shape=plan.grid + (32,), chunks=(1,) * len(plan.grid) + (32,), dtype="uint8",
                       fill_value=0, dimension_names=tuple(f"chunk_{d}" for d in plan.dims) + ("sha256",))
    return group, []


# --------------------------------------------------------------------------------- the sweep
@dataclass
class _Stats:
    computed: int = 0
    reused: int = 0
    pilot_seconds_per_start: float = float("nan")


def _task(plan, loss, index, store, threads, device, writer=None):
    """One Dask task: compute a chunk and write it to the store, or return its arrays when there
    is no store. Returns (index, arrays or None, seconds). With a ``writer`` (in-process runs)
    the write is handed to it, so that it overlaps the next chunk's computation, and the result
    is a future of the same."""
    t0 = time.perf_counter()
    arrays = compute_chunk(plan, loss, index, threads, device)
    if store is None:
        return index, arrays, time.perf_counter() - t0
    if writer is None:
        write_chunk(store, plan, index, arrays)
        return index, None, time.perf_counter() - t0
    return writer(lambda: (write_chunk(store, plan, index, arrays), (index, None, time.perf_counter() - t0))[1])


def _warm(plan, losses, index, device):
    """Run one start of a chunk: compiles (or loads) its kernel."""
    from dataclasses import replace
    region = plan.region(index)
    one = replace(plan, coords={d: plan.coords[d][r][:1] for d, r in zip(plan.dims, region)},
                  chunks=(1,) * len(plan.dims), critical=(plan.critical[plan.loss_index(region)],))
    compute_chunk(one, losses[plan.loss_index(region)], (0,) * len(plan.dims), 1, device)


def _size(plan, index):
    return int(np.prod([r.stop - r.start for r in plan.region(index)]))


def _run_local(plan, losses, todo, store, workers, threads, device, done_cb):
    """In-process with Dask's threaded scheduler (no scheduler to start): ``workers`` chunks at a
    time; one worker leaves the kernels their OpenMP threads, several run them on one thread each.
    Chunks are written by one writer thread while the next ones compute (two writes at most
    wait, so that memory stays bounded)."""
    import dask
    from concurrent.futures import ThreadPoolExecutor
    from dask.callbacks import Callback
    kernel_threads = threads if workers == 1 else 1
    pool = ThreadPoolExecutor(1, thread_name_prefix="flowcore-sweep-writer")
    room = threading.BoundedSemaphore(2)
    pending = []

    def writer(job):
        room.acquire()
        fut = pool.submit(job)
        fut.add_done_callback(lambda f: (room.release(), f.exception() or done_cb(*f.result())))
        pending.append(fut)

    class _Done(Callback):
        def _posttask(self, key, result, dsk, state, id):
            if isinstance(result, tuple) and len(result) == 3 and isinstance(result[0], tuple):
                done_cb(*result)

    tasks = [dask.delayed(_task, pure=False)(plan, losses[plan.loss_index(plan.region(ix))], ix, store,
                                             kernel_threads, device, writer if store is not None else None)
             for ix in todo]
    chunk_pool = ThreadPoolExecutor(workers, thread_name_prefix="flowcore-sweep")   # ours: fork-safe
    try:
        with _Done():
            dask.compute(*tasks, scheduler="threads", pool=chunk_pool)
    finally:
        chunk_pool.shutdown(wait=True)
        pool.shutdown(wait=True)
    for fut in pending:
        fut.result()                     # a failed write raises here


def _run_client(client, plan, losses, todo, store, device, done_cb):
    """On a Dask cluster: each task carries the plan and its loss (small; a loss travels as its
    expression, rebuilt once per worker process); its kernels run on one thread (a worker runs as
    many chunks at once as it has threads). A chunk lost with a worker is run again elsewhere."""
    from distributed import as_completed
    futures = [client.submit(_task, plan, losses[plan.loss_index(plan.region(ix))], ix, store, 1, device,
                             pure=False) for ix in todo]
    for fut in as_completed(futures):
        done_cb(*fut.result())


@dataclass(frozen=True)
class Store:
    """A sweep's Zarr store: a folder ``path``; ``overwrite``: replace a store of another
    definition (else it is refused)."""
    path: str
    overwrite: bool = False


def _models_and_settings(method, axes):
    """(model name or None, lr or None, {setting: value} fixed by the method values, axes with the
    'model' axis as names)."""
    axes = dict(axes) if isinstance(axes, dict) else axes
    given = []
    if isinstance(axes, dict) and "model" in axes:
        if method is not None:
            raise ValueError("give the method either as method= or as an axis 'model', not both")
        values = [axes["model"]] if isinstance(axes["model"], (str, Optimizer, Flow)) \
            else list(axes["model"])
        given = values
        axes["model"] = [v if isinstance(v, str) else v.name for v in values]
    elif method is not None:
        given = [method]
    for v in given:
        if not isinstance(v, str):
            checked_method(v)
    settings = {}
    for v in given:
        for k, x in _method_settings(v).items():
            if k in settings and settings[k] != x:
                raise ValueError(f"the methods of the 'model' axis disagree on {k} ({settings[k]!r} vs {x!r}): a sweep "
                                 "runs them with one setting each")
            settings[k] = x
    rates = {float(v.lr) for v in given if not isinstance(v, str) and v.uses_lr}
    lr = None
    if isinstance(axes, dict) and "lr" not in axes and rates:
        if len(rates) > 1:
            raise ValueError("the methods of the 'model' axis have different rates: sweep an 'lr' axis instead")
        lr = rates.pop()
    model = None if method is None else (method if isinstance(method, str) else method.name)
    return model, lr, {**_SETTINGS, **settings}, axes


def sweep(loss, method=None, axes=None, *, rest: fc.RestTest = REST, matching: Matching = MATCHING, plane=None,
          store=None, client=None, outputs=None, compute: fc.Compute = COMPUTE, progress=None):
    """Run ``method`` from every point of a grid over named ``axes``; returns an xarray Dataset.

    loss: a :class:`flowcore.Loss` with a sympy expression (``Loss.from_expr`` or the zoo), or a
    function of the loss-parameter axes returning one (``lambda b: fc.losses.rosenbrock(b=b)``).
    method: a map or flow value as in :func:`flowcore.analysis.basins` (fc.GD(0.1), fc.PF(0.2,
    solver=fc.Dop853()) …; an 'lr' axis replaces its rate), or a name ('gd', 'pf' …: its
    parameters at their defaults, its rate from an 'lr' axis); omit it when ``axes`` has a
    'model' axis (names or values).
    axes: {name: values} in the Dataset's order; values as a tuple (lo, hi, n) (n points from lo
    to hi) or a list or array of values; names 'lr', 'x', 'y', 'model' or a loss parameter
    (module docstring). Starts: origin + x·u + y·v with ``plane`` = (origin, (u, v)) (default 0,
    e₀, e₁).
    rest (a :class:`flowcore.RestTest`), matching (a :class:`Matching`: the critical points
    labels refer to, default all of them from sympy, else a Newton search around the grid, per
    loss) as in basins; labelled per start (module docstring).
    outputs: a subset of :data:`OUTPUTS` (default all).

    store: a folder for a Zarr store, or a :class:`Store` (path, overwrite) (None: results in
    memory, nothing to resume). Chunks are written as they finish; a rerun computes only missing
    or damaged chunks; a store of another definition is refused unless ``overwrite``. The
    Dataset is then read lazily from the store.
    compute: ``chunk`` {axis: length} (default: 'model' and loss parameters 1, about 65 536
    starts per chunk, the last axes kept whole first); ``workers``: chunks at a time in this
    process with Dask's threaded scheduler (1: each chunk's kernels use ``threads`` OpenMP
    threads); ``device`` as in :func:`flowcore.solve`.
    client: a ``dask.distributed.Client``: chunks are its tasks (the store must be a path its
    workers can write).
    progress: a bar across chunks and a cost estimate from the first (pilot) chunk (None: shown
    when the estimate says more than a few seconds).

    The Dataset's attributes hold the loss, model, settings, critical points, label meanings,
    flowcore version, the definition digest, and chunks computed/reused with the pilot's rate.
    """
    if not isinstance(rest, fc.RestTest):
        raise TypeError(f"rest must be a flowcore.RestTest(tol=, max_period=, confirm=, steps=), got {rest!r}")
    if not isinstance(matching, Matching):
        raise TypeError(f"matching must be a flowcore.analysis.Matching(critical=, match_tol=, imag_tol=), got {matching!r}")
    if not isinstance(compute, fc.Compute):
        raise TypeError(f"compute must be a flowcore.Compute(chunk={{axis: length}}, workers=, threads=), got {compute!r}")
    if compute.chunk is not None and not isinstance(compute.chunk, dict):
        raise ValueError(f"a sweep's compute.chunk is {{axis: length}}, got {compute.chunk!r}")
    overwrite = store.overwrite if isinstance(store, Store) else False
    store = store.path if isinstance(store, Store) else store
    model, lr, settings, axes = _models_and_settings(method, axes)
    origin, directions = _plane(plane)
    steps, workers, threads, device = rest.steps, compute.workers, compute.threads, compute.device
    _need("dask", "xarray", *(["zarr"] if store is not None else []), *(["distributed"] if client is not None else []))
    if client is not None and store is None:
        raise ValueError("a sweep on a Dask client needs store= (a folder its workers can write)")
    store = _writable_store(store) if store is not None else None
    plan, losses, attrs = _plan(loss, model, axes, lr, compute.chunk, outputs, origin, directions,
                                matching.critical,
                                dict(steps=steps, t_max=settings["t_max"], tol=rest.tol, max_period=rest.max_period,
                                     confirm=rest.confirm, escape_radius=rest.escape_radius,
                                     imag_tol=matching.imag_tol, match_tol=matching.match_tol,
                                     method=settings["method"], rtol=settings["rtol"], atol=settings["atol"],
                                     dt=settings["dt"], beta=settings["beta"], power=settings["power"],
                                     lr_cap=settings["lr_cap"]))
    done = []
    if store is not None:
        _, done = _open_store(store, plan, attrs, overwrite)
    every = list(itertools.product(*map(range, plan.grid)))
    todo = sorted(set(every) - set(done))
    stats = _Stats(computed=len(todo), reused=len(done))
    memory = {k: np.full(plan.shape + ((attrs["dim"],) if k == "final" else ()), OUTPUTS[k][1], OUTPUTS[k][0])
              for k in plan.outputs} if store is None else None
    bar = Progress(int(np.prod(plan.shape)), "sweep", "start", progress)
    bar.update(sum(_size(plan, ix) for ix in done))

    def done_cb(index, arrays, seconds):
        if arrays is not None:
            for k in plan.outputs:
                memory[k][plan.region(index)] = arrays[k]
        bar.update(_size(plan, index))

    try:
        if todo:
            # the pilot: the first chunk alone, whose rate gives the estimate for the rest (its
            # kernel compiled first, here, into the cache the workers read)
            _warm(plan, losses, todo[0], device)
            t0 = time.perf_counter()
            run = (lambda ix: _run_client(client, plan, losses, ix, store, device, done_cb)) if client is not None \
                else (lambda ix: _run_local(plan, losses, ix, store, workers, threads, device, done_cb))
            run(todo[:1])
            stats.pilot_seconds_per_start = (time.perf_counter() - t0) / _size(plan, todo[0])
            rest = sum(_size(plan, ix) for ix in todo[1:])
            parallel = workers if client is None else max(1, sum(client.nthreads().values()))
            eta = rest * stats.pilot_seconds_per_start / parallel
            if progress is not False and (progress or eta > 3.0):
                msg = (f"sweep: {len(every)} chunks, {int(np.prod(plan.shape)):,} starts × ≤ {steps} steps; pilot "
                       f"chunk {stats.pilot_seconds_per_start * 1e6:.3g} µs/start → about "
                       f"{eta:.0f} s for the other {len(todo) - 1} chunk(s) on {parallel} worker(s)")
                from tqdm.auto import tqdm
                tqdm.write(msg)
            if todo[1:]:
                run(todo[1:])
    except KeyboardInterrupt:
        if store is None:
            raise fc.Interrupted(None, "fa.sweep", "no store: nothing was kept") from None
        import zarr
        group = zarr.open_group(store, mode="r")
        kept = sum(chunk_is_complete(group, plan, ix) for ix in every)
        raise fc.Interrupted(None, "fa.sweep", f"{kept} of {len(every)} chunks are complete in the store {store} "
                                               "and are reused when the same sweep runs again") from None
    finally:
        bar.close()
    return _dataset(plan, attrs, stats, store, memory)


def _need(*modules):
    import importlib.util
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"fa.sweep needs {', '.join(missing)}: pip install 'flowcore[sweep]' (Dask, Zarr, xarray)")


def _dataset(plan, attrs, stats, store, memory):
    import xarray as xr
    if store is not None:
        import dask.array as da
        import zarr
        group = zarr.open_group(store, mode="r")
        arrays = {k: da.from_zarr(group[k]) for k in plan.outputs}
    else:
        arrays = memory
    data = {k: (plan.dims + (("coord",) if k == "final" else ()), arrays[k], {"meaning": OUTPUTS[k][2]})
            for k in plan.outputs}
    meta = {k: v if isinstance(v, (str, int, float)) else json.dumps(v) for k, v in attrs.items() if k != "dim"}
    meta.update(store=store or "", chunks_computed=stats.computed, chunks_reused=stats.reused,
                pilot_seconds_per_start=stats.pilot_seconds_per_start)
    return xr.Dataset(data, coords={d: plan.coords[d] for d in plan.dims}, attrs=meta)


def open_sweep(store):
    """The Dataset of a sweep store (lazily read), checking that every chunk is complete; a store
    with missing or damaged chunks raises, naming how many (rerun the sweep to finish it)."""
    _need("dask", "xarray", "zarr")
    import zarr
    path = os.path.abspath(os.fspath(store))
    if not _is_sweep_store(path):
        raise ValueError(f"{path!r} is not a flowcore sweep store")
    group = zarr.open_group(path, mode="r")
    attrs = _verified(path, dict(group.attrs["flowcore_sweep"]))
    plan = _plan_of(attrs)
    missing = [ix for ix in itertools.product(*map(range, plan.grid)) if not chunk_is_complete(group, plan, ix)]
    if missing:
        raise ValueError(f"store {path!r}: {len(missing)} of {int(np.prod(plan.grid))} chunks are missing or "
                         "damaged; rerun the same sweep with store= this path to complete it")
    return _dataset(plan, attrs, _Stats(0, int(np.prod(plan.grid))), path, None)


# --------------------------------------------------------------------------------- the plan
def _hex(values):
    return [float(v).hex() for v in np.asarray(values, float).reshape(-1)]


def _identity(loss):
    """What defines a loss's numbers: its kind and exact sympy expression."""
    import sympy as sp
    return {"kind": loss.kind, "expr": sp.srepr(loss.expr), "vars": [str(v) for v in loss.vars]}


# a sweep's definition keeps its methods as (name, settings) — JSON in the store's digest — and
# every chunk makes the method values again from them
_SETTINGS = {"beta": 0.9, "power": 1.0, "lr_cap": None, "method": "dopri5", "rtol": 1e-8, "atol": 1e-10, "dt": None,
             "t_max": None}


def _method_settings(m):
    """The settings a method value fixes, in the plan's keys; a name fixes none."""
    if isinstance(m, str):
        return {}
    if m.kind == "map":
        return {k: getattr(m, k) for k in ("beta", "power", "lr_cap") if hasattr(m, k)}
    solver = m.solver
    adaptive = isinstance(solver, fc.Adaptive)
    if TABLEAUX.get(solver.name) is not solver.tableau:
        raise ValueError("a sweep takes integrators over the named tableaux (fc.Dopri5, fc.Dop853, fc.RK4, ...): "
                         "its store records the name")
    return {"method": solver.name, "rtol": solver.rtol if adaptive else 1e-8, "atol": solver.atol if adaptive else 1e-10,
            "dt": solver.dt0 if adaptive else solver.dt, "t_max": m.t_max}


def method_value(model, lr, s):
    """The method value of one model of a plan at ``lr`` (one rate, or one per start for a map)."""
    if model in MAPS:
        own = {"heavy_ball": ("beta",), "nesterov": ("beta",), "dal": ("power", "lr_cap")}.get(model, ())
        params = {k: s[k] for k in own}
        return fc.method(model, **params) if model == "dal" else fc.method(model, lr=lr, **params)
    name = s["method"]
    tab = TABLEAUX[name]
    solver = fc.Adaptive(name, s["rtol"], s["atol"], s["dt"]) if tab.adaptive else fc.FixedStep(name, s["dt"])
    return fc.method(model, lr=lr, solver=solver, t_max=s["t_max"])


def _check_model(name):
    if name not in MAPS + FLOWS:
        close = difflib.get_close_matches(str(name), MAPS + FLOWS, n=2, cutoff=0.5)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise ValueError(f"model {name!r} does not exist{hint}; models: {', '.join(MAPS + FLOWS)}")
    return name


def _default_chunks(shape, fixed):
    """Chunk lengths: the fixed ones (1 for model and parameters), then from the last axis back,
    whole axes while they fit in CHUNK_STARTS starts, the first axis that does not fit cut."""
    out, room = list(shape), CHUNK_STARTS
    for i in reversed(range(len(shape))):
        if fixed[i] is not None:
            out[i] = fixed[i]
        else:
            out[i] = max(1, min(shape[i], room))
        room = max(1, room // out[i])
    return tuple(out)


def _plan(loss, model, axes, lr, chunks, outputs, origin, directions, critical, settings):
    """Check every argument (before any work) and fix the sweep's definition and its digest."""
    if not isinstance(axes, dict) or not axes:
        raise ValueError("axes must be a non-empty dict {name: values}, e.g. {'lr': (0.1, 1.0, 50), "
                         "'x': (-2, 2, 200)}")
    dims = tuple(axes)
    clash = [d for d in dims if d in OUTPUTS or d in ("coord", DIGEST) or not str(d).isidentifier()]
    if clash:
        raise ValueError(f"axis names {clash} are taken (outputs, 'coord') or not identifiers; rename them")
    params = tuple(d for d in dims if d not in ("lr", "model") + START_AXES)
    coords = {}
    for d in dims:
        if d == "model":
            names = [axes[d]] if isinstance(axes[d], str) else list(axes[d])
            if not names:
                raise ValueError("axis 'model' has zero length; give at least one model name")
            coords[d] = np.array([_check_model(m) for m in names])
        else:
            v = axes[d]
            if isinstance(v, (list, tuple, np.ndarray)) and len(v) == 0:
                raise ValueError(f"axis {d!r} has zero length; give (lo, hi, n) with n ≥ 1 or a non-empty array")
            coords[d] = _axis(np.asarray(v) if isinstance(v, list) else v, repr(d))   # a list is values
    if "model" in coords:
        if model is not None:
            raise ValueError("give the model either as model= or as an axis 'model', not both")
    elif model is None:
        raise ValueError(f"model is required (one of {', '.join(MAPS + FLOWS)}), or an axis 'model'")
    else:
        model = _check_model(model)
    models = list(coords["model"]) if "model" in coords else [model]
    if isinstance(loss, fc.Loss) and params:      # before the lr check: a misspelt 'lr' lands here
        close = {p: difflib.get_close_matches(p, ("lr", "model") + START_AXES, n=1) for p in params}
        hint = "".join(f" ({p!r}: did you mean {c[0]!r}?)" for p, c in close.items() if c)
        raise ValueError(f"axes {list(params)} are not lr, x, y or model{hint}; a loss parameter needs loss= a "
                         "function of it, e.g. loss=lambda b: fc.losses.rosenbrock(b=b)")
    if "lr" in coords:
        if lr is not None:
            raise ValueError("give the learning rate either as lr= or as an axis 'lr', not both")
        if np.any(coords["lr"] <= 0):
            raise ValueError("axis 'lr' must hold learning rates > 0")
    elif lr is not None:
        lr = positive(lr, "lr")
    elif any(m != "dal" for m in models):
        raise ValueError("a learning rate is required: lr= a number, or an axis 'lr'")

    # the losses, one per point of the parameter grid
    if isinstance(loss, fc.Loss):
        losses = [loss]
    elif callable(loss):
        grid = list(itertools.product(*[coords[p] for p in params]))
        losses = [loss(**{p: float(v) for p, v in zip(params, vals)}) for vals in grid]
        if not all(isinstance(L, fc.Loss) for L in losses):
            raise TypeError("loss(...) must return a flowcore.Loss")
    else:
        raise TypeError(f"loss must be a flowcore.Loss or a function of the loss-parameter axes, got "
                        f"{type(loss).__name__}")
    D = losses[0].dim
    if any(L.dim != D for L in losses):
        raise ValueError("every loss of the parameter axes must have the same dimension")
    for L in losses:
        if L.expr is None:
            raise ValueError(f"the loss {L.name!r} has no sympy expression, so a sweep store cannot tell it from "
                             "another; write it with Loss.from_expr (or use the zoo)")
    if D == 1 and "y" in coords:
        raise ValueError("the loss is 1-D: the start axes are 'x' only")
    o = np.zeros(D) if origin is None else np.asarray(origin, float).reshape(-1)
    U = np.eye(D)[:min(D, 2)] if directions is None else np.asarray(directions, float).reshape(-1, D)
    if o.shape != (D,) or not np.all(np.isfinite(o)):
        raise ValueError(f"origin must be {D} finite coordinates, got {origin!r}")
    if U.shape[0] != min(D, 2) or not np.all(np.isfinite(U)):
        raise ValueError(f"directions must be {min(D, 2)} vector(s) of length {D}, got shape {U.shape}")

    # settings, checked as basins checks them
    s = dict(settings)
    s["steps"] = count(s["steps"], "steps", 1, INT32_MAX - 1)
    s["max_period"] = count(s["max_period"], "max_period", 1, 1024)
    s["confirm"] = count(s["confirm"], "confirm (iterations a recurrence must hold)", 1, INT32_MAX)
    s["escape_radius"] = np.inf if s["escape_radius"] == np.inf else positive(s["escape_radius"], "escape_radius")
    for k in ("imag_tol", "match_tol"):
        s[k] = positive(s[k], k)
    if s["t_max"] is not None:
        s["t_max"] = positive(s["t_max"], "t_max")
    if len({m in MAPS for m in models}) > 1 and s["tol"] is None:
        raise ValueError("maps and flows need different rest tolerances: give tol= for a 'model' axis mixing them")
    if s["tol"] is None:
        s["tol"] = 1e-10 if models[0] in MAPS else 1e-5
    s["tol"] = positive(s["tol"], "tol")
    if not isinstance(s["method"], str):
        raise ValueError("a sweep takes the integrator by name (method='dopri5', 'dop853', 'rk4', ...)")

    outputs = tuple(OUTPUTS) if outputs is None else tuple([outputs] if isinstance(outputs, str) else outputs)
    bad = [k for k in outputs if k not in OUTPUTS]
    if bad or not outputs:
        raise ValueError(f"outputs must be some of {list(OUTPUTS)}, got {list(outputs)}")
    fixed = [1 if d in params or d == "model" else None for d in dims]
    if chunks is not None:
        if not isinstance(chunks, dict) or any(k not in dims for k in chunks):
            raise ValueError(f"chunks must be a dict {{axis: length}} over the axes {list(dims)}, got {chunks!r}")
        for k, v in chunks.items():
            c = count(v, f"chunks[{k!r}]", 1, INT32_MAX)
            if fixed[dims.index(k)] is not None and c != 1:
                raise ValueError(f"chunks[{k!r}] must be 1: each chunk runs one model and one loss")
            fixed[dims.index(k)] = c
    shape = tuple(len(coords[d]) for d in dims)
    chunk_len = tuple(min(c, n) for c, n in zip(_default_chunks(shape, fixed), shape))

    if critical is None:
        box = _start_box(coords, o, U)
        found = [[c for c in _critical(L, box) if np.all(np.isfinite(c.point))] for L in losses]
        critical = [np.array([c.point for c in f], float).reshape(-1, D) for f in found]
        kinds = [[c.kind for c in f] for f in found]
    else:
        critical = [np.asarray(critical, float).reshape(-1, D)] * len(losses)
        kinds = [["given"] * len(critical[0])] * len(losses)

    definition = {
        "flowcore_sweep": 2, "flowcore_version": fc.__version__, "dim": D,
        "losses": [_identity(L) for L in losses], "names": [L.name for L in losses],
        "exprs": [str(L.expr) for L in losses], "models": [str(m) for m in models],
        "model_axis": "model" in coords,
        "axes": {d: (list(map(str, coords[d])) if d == "model" else _hex(coords[d])) for d in dims},
        "lr": None if lr is None else float(lr).hex(), "origin": _hex(o), "directions": _hex(U),
        "settings": {k: (["float", float(v).hex()] if isinstance(v, float) else v) for k, v in s.items()},
        "critical": [_hex(c) for c in critical], "critical_kinds": kinds, "outputs": list(outputs),
        "chunks": list(chunk_len),
    }
    digest = _definition_digest(definition)
    plan = Plan(dims, coords, params, model, lr, o, U, outputs, chunk_len, s, tuple(critical), digest)
    return plan, losses, {"digest": digest, "definition": definition, **_readable(definition)}


def _definition_digest(definition):
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()


def _unhex(values):
    return [float.fromhex(x) for x in values]


def _readable(d):
    """A store's readable attributes, every one derived from its definition (whose digest keys every
    chunk): what a Dataset shows cannot differ from what its chunks were computed with."""
    D = d["dim"]
    dims = list(d["axes"])
    names = d["names"]
    return {"dim": D, "loss": names[0] if len(names) == 1 else names, "loss_expr": d["exprs"],
            "model": "(axis)" if d["model_axis"] else d["models"][0], "flowcore_version": d["flowcore_version"],
            "lr": None if d["lr"] is None else float.fromhex(d["lr"]),
            "settings": {k: float.fromhex(v[1]) if isinstance(v, list) and v[:1] == ["float"] else v
                         for k, v in d["settings"].items()},
            "outputs": list(d["outputs"]),
            "critical_points": [np.reshape(_unhex(c), (-1, D)).tolist() for c in d["critical"]],
            "critical_kinds": d["critical_kinds"], "label_meanings": {str(k): v for k, v in LABELS.items()},
            "axes": {k: (v if k == "model" else _unhex(v)) for k, v in d["axes"].items() if k in dims},
            "chunks": list(d["chunks"]), "origin": _unhex(d["origin"]),
            "directions": np.reshape(_unhex(d["directions"]), (-1, D)).tolist()}


def _verified(path, attrs):
    """A store's attributes as its definition says (the digest recomputed, not read), or a
    ValueError naming what was edited."""
    d = attrs.get("definition")
    if not isinstance(d, dict) or d.get("flowcore_sweep") != 2:
        raise ValueError(f"store {path!r} was written by another version of flowcore's sweeps; rerun the sweep "
                         "with a new store (or overwrite=True)")
    if _definition_digest(d) != attrs.get("digest"):
        raise ValueError(f"store {path!r}: its definition does not match its digest (the store's zarr.json was "
                         "edited); its chunks cannot be trusted: rerun the sweep with overwrite=True")
    want = {"digest": attrs["digest"], "definition": d, **_readable(d)}
    edited = sorted(k for k in set(want) | set(attrs) if json.dumps(want.get(k), sort_keys=True) !=
                    json.dumps(attrs.get(k), sort_keys=True))
    if edited:
        raise ValueError(f"store {path!r}: its attribute(s) {', '.join(edited)} disagree with the definition its "
                         "chunks were computed by (the store's zarr.json was edited); rerun with overwrite=True")
    return want


def _start_box(coords, origin, U):
    """The grid's starts at the corners of the x/y axes (for the Newton search of critical points)."""
    xs = [coords.get(n, np.zeros(1))[[0, -1]] for n in START_AXES[:len(U)]]
    return np.array([origin + sum(c * u for c, u in zip(cs, U)) for cs in itertools.product(*xs)])


def _plan_of(attrs):
    """A Plan from a store's verified attributes (to read it back: no losses needed)."""
    d = attrs["definition"]
    dims = tuple(d["axes"])
    coords = {k: (np.array(v) if k == "model" else np.array(_unhex(v))) for k, v in d["axes"].items()}
    params = tuple(k for k in dims if k not in ("lr", "model") + START_AXES)
    return Plan(dims, coords, params, None, None, np.array(attrs["origin"]), np.array(attrs["directions"]),
                tuple(d["outputs"]), tuple(d["chunks"]), attrs["settings"],
                tuple(np.array(c) for c in attrs["critical_points"]), attrs["digest"])
