"""``python -m flowcore.cli``: the command line."""
import sys

from flowcore.cli import main

sys.exit(main())
