"""``python -m tuner.cli``: the same as ``mbrl-tune``."""

import sys

from tuner.cli.main import main

sys.exit(main())
