"""``python -m gateway ...`` runs the operator CLI (the same as the ``streamflow`` command)."""

from gateway.cli import main

raise SystemExit(main())
