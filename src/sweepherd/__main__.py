"""``python -m sweepherd`` runs the CLI."""

import sys

from sweepherd.cli.main import main

sys.exit(main())
