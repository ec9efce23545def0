"""``python -m node_agent``: the same as ``minerguard agent``."""

import sys

from node_agent.cli import main

sys.exit(main())
