"""The tour: the lessons' exercises, the paper's analyses and SGD's models, each a figure with its numbers.

``flowcore tour -o DIR`` calls :func:`run`: every item writes DIR/NAME.png and DIR/NAME.json and
gets one sentence in DIR/index.md. An item is a function ``item(quick) -> (figure, data,
sentence)``; ``quick`` shrinks grids and step counts (the tests use it). The items are grouped by
where they come from: ``lessons``, ``paper_toy`` (the paper on toy losses), ``paper_networks``, ``sgd``.
"""
import json
import os
import time
from pathlib import Path

import numpy as np

import flowcore as fc
from flowcore.analysis.dynamics import as_json
from flowcore.analysis.plot import _plt
from flowcore.analysis.tour import lessons, paper_networks, paper_toy, sgd
from flowcore.analysis.tour.paper_toy import track_figure
from flowcore.engine.progress import quiet

__all__ = ["run", "ITEMS", "track_figure"]


LESSONS = [lessons.gf_vs_gd, lessons.quadratic_lr, lessons.momentum, lessons.min_norm, lessons.euler, lessons.ring_flow,
           lessons.quartic, lessons.vector_fields, lessons.double_well_basins, lessons.orbit,
           lessons.trainability, lessons.resnet_ode]
PAPER_TOY = [paper_toy.alpha, paper_toy.pf_regimes, paper_toy.pf_quadratic_2d, paper_toy.banana, paper_toy.tracking,
             paper_toy.edge_of_stability, paper_toy.stability_coefficients, paper_toy.drift, paper_toy.dal,
             paper_toy.eos_models]
PAPER_NETWORKS = [paper_networks.network_eos, paper_networks.network_tracking, paper_networks.network_projection,
                  paper_networks.network_stability, paper_networks.network_dal]
SGD = [sgd.sgd_double_well, sgd.sgd_temperature, sgd.sme_weak_error]
ITEMS = LESSONS + PAPER_TOY + PAPER_NETWORKS + SGD


SLOW_FIRST = ("network_eos", "network_tracking", "eos_models", "resnet_ode", "network_stability", "trainability",
              "sgd_double_well")     # started first when parallel


def _share_cores(threads):
    """In a tour worker: OpenMP and XLA (JAX) use ``threads`` threads, so that the workers share the
    cores instead of each starting a thread per core (oversubscribed, two workers ran no faster
    than one)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                               f" intra_op_parallelism_threads={threads}").strip()


def _render(name, out, quick, progress=True):
    """Render one item into ``out`` (NAME.png, NAME.json); returns its sentence. Without
    ``progress`` the item's own bars (a long central flow's) stay hidden too."""
    f = next(g for g in ITEMS if g.__name__ == name)
    plt = _plt()
    t0 = time.perf_counter()
    with quiet(not progress):
        fig, data, sentence = f(quick)
    # Each file appears whole (written beside, then renamed), the JSON last: a figure whose JSON is
    # there is finished, even if a Ctrl-C came before this function returned.
    png, js = Path(out) / f"{name}.png", Path(out) / f"{name}.json"
    parts = png.with_suffix(".png.part"), js.with_suffix(".json.part")
    try:
        fig.savefig(parts[0], dpi=110, format="png")
        plt.close(fig)
        os.replace(parts[0], png)
        data = {"item": name, "summary": sentence, "seconds": time.perf_counter() - t0, **data}
        parts[1].write_text(json.dumps(as_json(data), indent=1))
        os.replace(parts[1], js)
    finally:
        for part in parts:
            part.unlink(missing_ok=True)
    return sentence


def _first_sentence(doc):
    """A docstring's first sentence, on one line (its first line may end mid-sentence)."""
    text = " ".join(doc.split())
    end = text.find(". ")
    return text if end < 0 else text[:end + 1]


class _CtrlC:
    """Remembers a Ctrl-C. Python drops a KeyboardInterrupt raised inside a finaliser or a weakref
    callback ("Exception ignored in ..."), so the tour also checks this flag after each figure."""

    def __init__(self):
        self.pressed = False
        self._previous = None

    def _handle(self, signum, frame):
        self.pressed = True
        if frame is not None and frame.f_code.co_filename.endswith("weakref.py"):
            return          # raised there it would be printed and dropped; the flag stops the tour
        raise KeyboardInterrupt

    def check(self):
        if self.pressed:
            raise KeyboardInterrupt

    def __enter__(self):
        import signal
        import threading
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        import signal
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _render_in_processes(names, out, quick, workers, said, bar, ctrl_c, progress):
    """Render items in ``workers`` spawned processes (the slow ones first), filling ``said``; on
    Ctrl-C the items not started are cancelled."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    order = sorted(names, key=lambda n: n not in SLOW_FIRST)
    n = min(workers, len(names))
    with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"), initializer=_share_cores,
                             initargs=(max(1, (os.cpu_count() or 1) // n),)) as pool:
        jobs = {pool.submit(_render, name, str(out), quick, progress): name for name in order}
        try:
            for job in as_completed(jobs):
                said[jobs[job]] = job.result()
                bar.update()
                ctrl_c.check()
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _finished_since(out, name, started):
    """Whether ``name``'s JSON (written last, by a rename) was written in this run. File times come
    from the OS's coarse clock, a few ms behind ``time.time()``: hence the second's margin (a
    previous run's files are older than that)."""
    js = Path(out) / f"{name}.json"
    return js.exists() and js.stat().st_mtime >= started - 1.0


def run(out, quick=False, only=None, progress=True, workers=1):
    """Render every item into ``out``: NAME.png, NAME.json, and index.md. Returns the index entries.
    ``workers`` > 1 renders items in that many processes (spawned: each imports flowcore afresh)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    items = [f for f in ITEMS if only is None or f.__name__ in only]
    if only is not None and len(items) != len(set(only)):
        unknown = set(only) - {f.__name__ for f in ITEMS}
        raise ValueError(f"unknown tour items {sorted(unknown)}; the items are {[f.__name__ for f in ITEMS]}")
    if not isinstance(workers, (int, np.integer)) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    from tqdm.auto import tqdm
    names = [f.__name__ for f in items]
    said = {}
    started = time.time()
    bar = tqdm(total=len(names), desc="tour", unit="figure", disable=not progress)
    try:
        with _CtrlC() as ctrl_c:
            if workers == 1 or len(names) == 1:
                for name in names:
                    said[name] = _render(name, out, quick, progress)
                    bar.update()
                    ctrl_c.check()
            else:
                _render_in_processes(names, out, quick, workers, said, bar, ctrl_c, progress)
    except KeyboardInterrupt:
        done = [n for n in names if n in said or _finished_since(out, n, started)]
        raise fc.Interrupted(None, "the tour", (
            f"{len(done)} of {len(names)} figures were written to {out} (PNG and JSON: {', '.join(done)}); index.md "
            "was not: rerun the tour to render every figure" if done else "no figure was finished")) from None
    finally:
        bar.close()
    entries = [(f, said[f.__name__]) for f in items]
    lines = ["# flowcore tour", "", "Generated by `flowcore tour`. Each figure's numbers are in the JSON beside it.", ""]
    for title, group in (("Lessons' exercises", LESSONS),
                         ("The paper's analyses (Rosca et al. 2023) on toy losses", PAPER_TOY),
                         ("The paper's analyses on networks", PAPER_NETWORKS),
                         ("SGD and its continuous models", SGD)):
        sel = [(f, s) for f, s in entries if f in group]
        if sel:
            lines += [f"## {title}", ""]
            for f, s in sel:
                lines += [f"### {f.__name__}: {_first_sentence(f.__doc__)}", "", s, "",
                          f"![{f.__name__}]({f.__name__}.png) · [numbers]({f.__name__}.json)", ""]
    (out / "index.md").write_text("\n".join(lines))
    return entries
