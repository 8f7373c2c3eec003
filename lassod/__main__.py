"""Run lassod with `python -m lassod`."""

from lassod.cli import main

raise SystemExit(main())
