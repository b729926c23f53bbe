"""``python -m flatext`` is the ``flatext`` command."""

import sys

from .cli import main

sys.exit(main())
