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
