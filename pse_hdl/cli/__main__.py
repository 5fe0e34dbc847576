"""``python -m pse_hdl.cli``: the ``pse`` command."""

import sys

from . import main

sys.exit(main())
