"""``python -m minerguard`` is the ``minerguard`` command."""

import sys

from minerguard.cli import main

sys.exit(main())
