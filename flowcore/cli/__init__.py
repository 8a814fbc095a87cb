"""The flowcore command line: ``flowcore SUBCOMMAND --help``. A module per command group."""
import argparse
import re
import sys

from flowcore.cli import dynamics, models, sgd, symbolic, tools
from flowcore.cli._common import _fmt  # noqa: F401  (re-exported for tests)
from flowcore.cli.dynamics import _sweep_axis  # noqa: F401
from flowcore.cli.tools import project_benchmarks  # noqa: F401


def build_parser():
    p = argparse.ArgumentParser(prog="flowcore", description=(
        "flowcore: continuous-time models of gradient descent (NGF, IGR, third-order, the "
        "principal flow), batched integrators, basins and backward error analysis."))
    from flowcore import __version__
    p.add_argument("--version", action="version", version=f"flowcore {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for group in (symbolic, dynamics, models, sgd, tools):
        group.register(sub)
    return p


_NEGATIVE_VALUE = re.compile(r"-\.?\d")     # '-2,2,201', '-0.5', '-.5,1'


def _attach_negative_values(argv):
    """``--grid -2,2,201,...`` read as ``--grid=-2,2,201,...``: argparse takes a token with a leading
    minus that is not a plain number for an option, and no flowcore option's value is one."""
    out = []
    for tok in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and _NEGATIVE_VALUE.match(tok):
            out[-1] = f"{out[-1]}={tok}"
        else:
            out.append(tok)
    return out


def main(argv=None):
    from flowcore.engine._errors import DeviceUnavailable
    parser = build_parser()
    args = parser.parse_args(_attach_negative_values(sys.argv[1:] if argv is None else list(argv)))
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args) or 0
    except (ValueError, TypeError, NotImplementedError, ImportError, DeviceUnavailable) as exc:
        print(f"flowcore {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        kept = getattr(exc, "kept", None) or "nothing was written"
        print(f"flowcore {args.command}: interrupted (Ctrl-C); {kept}", file=sys.stderr)
        return 130
    except BrokenPipeError:          # `flowcore ... --json | head`: the reader left, not an error
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
