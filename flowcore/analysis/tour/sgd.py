"""SGD and its models: the double well, temperature and the SME's weak error."""



def sgd_double_well(quick):
    """SGD and its SDE on a double well at batch sizes 1, 2, 4: the stationary density ∝ exp(−2E/σ²)
    with σ² = ηs²/B, and escape rates against the SDE's exact mean first-passage time."""
    from flowcore.analysis import sgd
    from flowcore.analysis.plot import sgd_double_well as plot
    r = sgd.double_well_sgd(horizon=200 if quick else 1000, runs=100 if quick else 500)
    rates = "; ".join(f"B = {B}: SGD {row['sgd']['exit_rate']:.2g}, SDE {row['sde']['exit_rate']:.2g}, exact "
                      f"{row['exact_exit_rate']:.2g}" for B, row in r["batches"].items())
    return plot(r), r, (f"SGD with η = {r['lr']:g} on a double well whose gradient noise has variance "
                        f"{r['spread']**2:.3g}: escape rates per unit time from one well to the other {rates} "
                        "— larger batches are quieter and escape exponentially less often.")


def sgd_temperature(quick):
    """Learning rate and batch size as temperature: which of a sharp (deeper) and a flat minimum SGD
    ends in, against η/B, for three learning rates and four batch sizes, with the SDE."""
    from flowcore.analysis import sgd
    from flowcore.analysis.plot import sgd_temperature as plot
    r = sgd.temperature(horizon=50 if quick else 200, runs=100 if quick else 400,
                        batches=(1, 4) if quick else (1, 2, 4, 8))
    by = {}
    for p in r["sgd"]:
        by.setdefault(round(p["lr_over_batch"], 12), []).append(p["flat"])
    same = [v for v in by.values() if len(v) > 1]
    spread = max((max(v) - min(v) for v in same), default=0.0)
    lo, hi = min(r["sgd"], key=lambda p: p["flat"]), max(r["sgd"], key=lambda p: p["flat"])
    return plot(r), r, (f"Runs with the same η/B end in the flat minimum in the same share (largest difference "
                        f"{spread:.2f} over {len(same)} pairs with equal η/B): from {hi['flat']:.2f} at η/B = "
                        f"{hi['lr_over_batch']:g} to {lo['flat']:.2f} at η/B = {lo['lr_over_batch']:g}; the SDE "
                        "with σ² = s²η/B follows the same curve.")


def sme_weak_error(quick):
    """Weak error of the stochastic modified equations SME-1 and SME-2 against SGD on a quadratic:
    O(η) and O(η²), with Monte-Carlo SGD beside the closed form."""
    from flowcore.analysis import sgd
    from flowcore.analysis.plot import sme_weak_error as plot
    r = sgd.sme_weak_error(runs=20_000 if quick else 1_000_000)
    return plot(r), r, (f"At t = 1 the weak error of E w² falls with η (the three smallest) at fitted slope {r['slopes'][1]:.2f} for "
                        f"SME-1 and {r['slopes'][2]:.2f} for SME-2 (theory 1 and 2); Monte-Carlo SGD over "
                        f"{r['runs']:,} seeds agrees with SGD's closed form to "
                        f"{max(x['mc_error'] for x in r['rows']):.1e}.")
