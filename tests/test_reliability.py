"""Faults and bad input: Ctrl-C inside kernels, huge thread counts, unchecked arguments, Python
callables without a Hessian, exceptions inside user callbacks."""
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import flowcore as fc
from flowcore import analysis as fa


def _sigint_after(seconds):
    t = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
    t.start()
    return t


def test_ctrl_c_inside_a_solve_chunk_is_prompt_and_keeps_finished_rows():
    flow = fc.flows.pf(fc.losses.double_well(), 0.2)
    starts = np.random.default_rng(0).uniform(-2, 2, (6000, 2))
    before = signal.getsignal(signal.SIGINT)     # SIG_IGN when pytest runs as a background job
    timer = _sigint_after(0.7)
    t0 = time.perf_counter()
    with pytest.raises(fc.Interrupted) as info:
        fc.solve(flow, starts, t_span=(0, 200.0), compute=fc.Compute(chunk=len(starts)), progress=False)
    elapsed = time.perf_counter() - t0
    timer.join()
    assert elapsed < 5.0                    # the full run takes minutes
    sol = info.value.partial
    st = np.asarray(sol.status)
    assert np.any(st == fc.Status.INTERRUPTED)
    done = st != fc.Status.INTERRUPTED
    assert np.any(done)                    # finished blocks are kept ...
    again = fc.solve(flow, starts[done][:5], t_span=(0, 200.0))   # ... and are the real results
    np.testing.assert_array_equal(again.y[:, -1], sol.y[done][:5, -1])
    # Python's own SIGINT handling is back after the kernel
    assert signal.getsignal(signal.SIGINT) is before


def test_ctrl_c_inside_descend_and_basins():
    timer = _sigint_after(0.5)
    t0 = time.perf_counter()
    with pytest.raises(fc.Interrupted):
        # chaotic GD never comes to rest: without the interrupt this runs for many minutes
        fa.basins(fc.Loss.from_expr("(w**2 - 1)**2/4"), fc.GD(1.5), (-1.2, 1.2, 64), rest=fc.RestTest(steps=2 * 10**9 - 1, escape_radius=1e6))
    timer.join()
    assert time.perf_counter() - t0 < 5.0


def test_ctrl_c_inside_a_recording_kernel(monkeypatch):
    """fc.descend's compiled kernel reads the Ctrl-C flag: pressed as the kernel starts (set
    here, since a recorded run long enough for a timer would need gigabytes of iterates), every
    trajectory stops at once with INTERRUPTED and the partial run comes back."""
    import ctypes
    from flowcore.engine import _kernels
    real = _kernels.host_record

    def pressed_at_start(p, method):
        fn = real(p, method)

        def call(*args):                      # args[3]: the kernels' Ctrl-C flag (see _call_host)
            ctypes.c_int.from_address(args[3]).value = 1
            return fn(*args)
        return call
    monkeypatch.setattr(_kernels, "host_record", pressed_at_start)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(fc.Interrupted) as info:
        fc.descend(fc.losses.double_well(), np.ones((300, 2)), fc.GD(0.1), 1000, compute=fc.Compute(device="cpu"))
    run = info.value.partial
    assert (run.status == fc.Status.INTERRUPTED).all() and (run.nsteps == 0).all()
    assert signal.getsignal(signal.SIGINT) is before


def test_ctrl_c_between_chunks_leaves_the_rest_interrupted(monkeypatch):
    """descend_to_rest (and fa.basins through it) runs in chunks: Ctrl-C pressed as the second
    chunk starts stops it there; the first chunk's starts keep their results, every other start
    is INTERRUPTED with no result (NaN, period 0) — not uninitialised memory read as statuses.
    fa.basins, which labels chunk by chunk, labels nothing and says how far it got."""
    import ctypes
    from flowcore.engine import _kernels
    real, calls = _kernels.host_rest, []

    def pressed_on_second(p, method, pmax):
        fn = real(p, method, pmax)

        def call(*args):                      # args[3]: the kernels' Ctrl-C flag (see _call_host)
            calls.append(args[4])
            if len(calls) == 2:
                ctypes.c_int.from_address(args[3]).value = 1
            return fn(*args)
        return call
    monkeypatch.setattr(_kernels, "host_rest", pressed_on_second)
    loss = fc.losses.double_well()
    starts = np.random.default_rng(0).uniform(-1.5, 1.5, (4000, 2))
    with pytest.raises(fc.Interrupted) as info:
        fc.descend_to_rest(loss, starts, fc.GD(0.1), compute=fc.Compute(device="cpu", chunk=1000))
    rest = info.value.partial
    assert calls == [1000, 1000]
    first, others = slice(0, 1000), slice(1000, None)
    assert (rest.status[first] == fc.Status.OK).all() and (rest.period[first] == 1).all()
    assert (rest.status[others] == fc.Status.INTERRUPTED).all()
    assert (rest.period[others] == 0).all() and (rest.nsteps[others] == 0).all()
    assert np.isnan(rest.final[2000:]).all()          # the chunks that never ran: no point at all
    assert "INTERRUPTED: 3000" in repr(rest)
    calls.clear()
    with pytest.raises(fc.Interrupted) as info:
        fa.basins(loss, fc.GD(0.1), ((-1.5, 1.5, 300), (-1.5, 1.5, 200)), progress=False)    # chunks of 2^14
    assert calls == [2**14, 2**14]          # labelled chunk by chunk: stopped in the second
    assert info.value.partial is None and "nothing is labelled (16384 of 60000 starts had run)" in str(info.value)


def test_cli_exits_non_zero_on_ctrl_c(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "flowcore.cli", "basins", "--loss", "double_well",
                             "--model", "pf", "--lr", "0.2", "--grid=-2,2,301,-2,2,301", "--steps", "2000",
                             "-o", str(tmp_path / "b.png")], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(6.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode not in (0, None), out
    assert "interrupted" in err.lower() and "Traceback" not in err
    assert not (tmp_path / "b.png").exists()


def test_threads_are_bounded_and_named():
    loss = fc.losses.double_well()
    flow = fc.flows.ngf(loss, 0.1)
    th = np.ones((3, 2))
    for bad in (2**31 - 1, 0, -1, 1.5, True):
        with pytest.raises((ValueError, TypeError), match="threads"):
            fc.solve(flow, th, t_span=(0, 1), compute=fc.Compute(threads=bad))
        with pytest.raises((ValueError, TypeError), match="threads"):
            fc.descend(loss, th, fc.GD(0.1), 10, compute=fc.Compute(threads=bad))
    # many threads requested for little work: capped, same result
    a = fc.solve(flow, th, t_span=(0, 1), compute=fc.Compute(threads=4000)).y
    np.testing.assert_array_equal(a, fc.solve(flow, th, t_span=(0, 1), compute=fc.Compute(threads=1)).y)
    with pytest.raises(ValueError, match="steps"):
        fc.descend(loss, th, fc.GD(0.1), 2**31)
    with pytest.raises(ValueError, match="max_steps"):
        fc.solve(flow, th, t_span=(0, 1), method=fc.Dopri5(max_steps=2**63))


def test_unchecked_arguments_now_checked():
    loss = fc.losses.double_well()
    flow = fc.flows.ngf(loss, 0.1)
    th = np.ones((3, 2))
    for chunk in (-1, 0):
        with pytest.raises(ValueError, match="chunk"):
            fc.solve(flow, th, t_span=(0, 1), compute=fc.Compute(chunk=chunk))
    q = fc.Loss.from_expr("(w**2 - 1)**2/4")
    for kw, says in ((dict(escape_radius=-1), "escape_radius"), (dict(tol=-1e-3), "tol"),
                     (dict(confirm=0), "confirm")):
        with pytest.raises(ValueError, match=says):
            fc.RestTest(**kw)
    with pytest.raises(ValueError, match="1-D"):
        fa.basins(q, fc.GD(0.1), ((-1, 1, 3), (-1, 1, 3)))
    with pytest.raises(ValueError, match="real"):
        fa.basins(q, fc.GD(0.1), np.linspace(-1, 1, 5) + 1j)
    me = fa.modified_equation("x**4/4", order=1)
    for lr in (0, float("nan"), -0.1):
        with pytest.raises(ValueError, match="lr"):
            me.to_flow(lr)
    with pytest.raises(TypeError, match="transient"):
        fa.orbit_diagram(q, [0.5], [0.3], transient=1.5)


def test_dt_is_the_first_step_of_adaptive_methods():
    """y' = −y: with dt=1e-3 the first accepted step of dopri5 is 1e-3 (not Hairer's choice)."""
    f = fc.Field.from_expr(["-y"], vars=("y",))
    sol = fc.solve(f, [[1.0]], t_eval=[1e-3], method=fc.Dopri5(dt0=1e-3))
    assert sol.nsteps[0] == 1 and sol.nfev[0] <= 8
    np.testing.assert_allclose(sol.y[0, -1, 0], np.exp(-1e-3), rtol=1e-12)


def test_python_callable_without_hessian_runs_ngf_and_errors_pass_through():
    py = fc.Loss.from_callable(lambda t: t @ t, lambda t: 2 * t, dim=3)
    np.testing.assert_allclose(fc.flows.ngf(py, 0.1)([[1.0, 2, 3]]), [[-2.0, -4, -6]])
    sol = fc.solve(fc.flows.ngf(py, 0.1), [[1.0, 2, 3]], t_span=(0, 1), method=fc.Dopri5(rtol=1e-10, atol=1e-12))
    np.testing.assert_allclose(sol.y[0, -1], np.exp(-2.0) * np.array([1, 2, 3]), rtol=1e-8)
    with pytest.raises(NotImplementedError, match="hess"):
        fc.flows.igr(py, 0.1)([[1.0, 2, 3]])

    class Boom(Exception):
        pass

    def grad(t):
        raise Boom("inside the user's gradient")
    bad = fc.Loss.from_callable(lambda t: t @ t, grad, dim=2)
    with pytest.raises(Boom, match="user's gradient"):
        fc.solve(fc.flows.ngf(bad, 0.1), [[1.0, 2.0]], t_span=(0, 1))
