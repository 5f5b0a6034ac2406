"""``python -m minilottery`` is the ``minilottery`` command."""

import sys

from minilottery.lab.cli import main

sys.exit(main())
