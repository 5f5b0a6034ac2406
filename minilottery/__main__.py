"""``python -m minilottery`` is the ``minilottery`` command."""

import sys

from minilottery.cli import main

sys.exit(main())
