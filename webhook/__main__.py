"""``python -m webhook``: the same as ``minerguard webhook``."""

import sys

from webhook.cli import main

sys.exit(main())
