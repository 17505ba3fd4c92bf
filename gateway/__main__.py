"""``python -m gateway ...`` runs the operator CLI (the same as the ``streamflow`` command).

Kept as the gateway's well-known entry point (``python -m gateway serve``, the image's command).
It is a launcher, not part of the gateway: the one arrow from gateway to the CLI, allowed by
name in the import contracts (pyproject.toml), and nothing imports this module.
"""

from cli import main

raise SystemExit(main())
