"""The public API's shape (issue 33): methods and settings are values, so no public function
carries every method's knobs."""
import inspect

import flowcore as fc
from flowcore import analysis as fa

MAX_PARAMETERS = 11      # "about ten": fa.sweep, the widest, has 11


def _public_functions():
    for mod in (fc, fa, fc.nn, fc.flows, fc.losses):
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name)
            if inspect.isfunction(obj):
                yield f"{mod.__name__}.{name}", obj


def test_no_public_function_has_more_than_about_ten_parameters():
    wide = {name: len(inspect.signature(f).parameters) for name, f in _public_functions()
            if len(inspect.signature(f).parameters) > MAX_PARAMETERS}
    assert not wide, wide


def test_the_drivers_take_method_values_not_knobs():
    """The old keyword forms are gone: a map's β, an integrator's tolerances or SGD's batch
    cannot be passed to a driver that does not own them."""
    for f, gone in ((fc.descend, {"lr", "beta", "power", "lr_cap", "batch", "seed", "threads", "device"}),
                    (fc.solve, {"rtol", "atol", "dt", "max_steps", "threads", "device", "chunk", "dense"}),
                    (fa.basins, {"lr", "beta", "power", "lr_cap", "rtol", "atol", "dt", "tol", "steps", "t_max"}),
                    (fa.sweep, {"lr", "beta", "power", "lr_cap", "rtol", "atol", "dt", "tol", "steps", "t_max",
                                "workers", "chunks", "overwrite"})):
        assert not gone & set(inspect.signature(f).parameters), f.__name__


def test_a_loss_says_what_it_provides():
    """The backend contract: solvers choose by ``loss.provides``, never by the loss's module."""
    import numpy as np
    import pytest
    zoo = fc.losses.double_well()
    assert zoo.provides == {"value", "grad", "hess", "third", "expression"}
    bowl = fc.Loss.from_callable(lambda t: t @ t, lambda t: 2 * t, dim=2)
    assert bowl.provides == {"value", "grad"}
    data = fc.DataLoss.from_expr("(w - x)**2/2", {"x": np.linspace(-1, 1, 5)}, vars=["w"])
    assert "sgd_kernel" in dir(data) and data.full_batch_loss.provides >= {"value", "grad", "expression"}
    pytest.importorskip("jax")
    net = fc.nn.mlp(*fc.nn.regression_2d(10), widths=(3,))
    assert {"hvp", "value", "grad", "hess", "third"} <= net.loss.provides and "expression" not in net.loss.provides
    assert "sgd_examples" in dir(net)
