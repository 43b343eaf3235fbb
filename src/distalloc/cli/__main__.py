"""``python -m distalloc.cli``."""
import sys

from distalloc.cli import main

sys.exit(main())
