"""``python -m lpn_arc``: the ``lpn-arc`` command."""

import sys

from lpn_arc.cli import main

sys.exit(main())
