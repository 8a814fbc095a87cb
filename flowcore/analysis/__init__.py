"""flowcore.analysis: the symbolic and analysis layer (imported as ``flowcore.analysis``).

It calls the numeric engine in ``flowcore`` and never re-implements its numerics.
"""
from flowcore.analysis.critical import (CriticalPoint, CriticalPoints, classify, critical_points,
                                        jacobian_eigenvalues, stability, stability_coefficients,
                                        stable_lr_interval, MODELS)

__all__ = ["CriticalPoint", "CriticalPoints", "classify", "critical_points", "jacobian_eigenvalues", "stability",
           "stability_coefficients", "stable_lr_interval", "MODELS"]
from flowcore.analysis.bea import ModifiedEquation, modified_equation, verify_order

__all__ += ["ModifiedEquation", "modified_equation", "verify_order"]
from flowcore.analysis import bseries

__all__ += ["bseries"]
from flowcore.analysis.dynamics import (as_json, basin_entropy, orbit_diagram, orbit_period, portrait,
                                        uncertainty_exponent)

__all__ += ["as_json", "basin_entropy", "orbit_diagram", "orbit_period", "portrait", "uncertainty_exponent"]
from flowcore.analysis import plot

__all__ += ["plot"]
from flowcore.analysis.basins import Basins, Label, Matching, basins, grid_points

__all__ += ["Basins", "Label", "Matching", "basins", "grid_points"]
from flowcore.analysis.sweep import Store, open_sweep, sweep

__all__ += ["Store", "open_sweep", "sweep"]
from flowcore.analysis.central import CentralFlow, central_field, central_flow, cone_solve

__all__ += ["CentralFlow", "central_field", "central_flow", "cone_solve"]
from flowcore.analysis.eos import compare_models, self_stabilization

__all__ += ["compare_models", "self_stabilization"]
from flowcore.analysis.sgd import SGDModifiedLoss, sgd_modified_loss, sme

__all__ += ["SGDModifiedLoss", "sgd_modified_loss", "sme"]
from flowcore.analysis import depth, paper, tour

__all__ += ["depth", "paper", "tour"]
