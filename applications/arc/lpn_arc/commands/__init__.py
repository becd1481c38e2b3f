"""What each ``lpn-arc`` command does (the command line itself is :mod:`lpn_arc.cli`).

Every ``run_*`` function takes the parsed arguments and returns the exit status. The
packages they use are imported inside them, so ``lpn-arc --help`` stays quick.
"""

from lpn_arc.commands.common import load_arc
from lpn_arc.commands.evaluate import run_eval
from lpn_arc.commands.quickstart import QUICKSTART_SEARCHES, run_quickstart
from lpn_arc.commands.solve import run_models, run_solve
from lpn_arc.commands.tools import run_data, run_explore
from lpn_arc.commands.train import run_train

__all__ = [
    "QUICKSTART_SEARCHES",
    "load_arc",
    "run_data",
    "run_eval",
    "run_explore",
    "run_models",
    "run_quickstart",
    "run_solve",
    "run_train",
]
