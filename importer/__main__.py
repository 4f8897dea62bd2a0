"""`python -m importer` is the same as the `importer` console script."""

import sys

from importer.cli import main

sys.exit(main())
