"""``python -m dfs_analytics.cli``: the ``dfs-analytics`` command."""

import sys

from . import main

sys.exit(main())
