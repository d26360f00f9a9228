"""``python -m vertkp <command> ...``: the same as the ``vertkp`` command (``vertkp.cli``)."""
import sys

from .cli import main

sys.exit(main())
