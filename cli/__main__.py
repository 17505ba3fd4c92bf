"""``python -m cli ...``: the operator CLI, the same as the ``streamflow`` command."""

from cli import main

raise SystemExit(main())
