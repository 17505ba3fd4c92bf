"""The gateway with a resolver stand-in, run as its own process like the real one:

    uvicorn --factory tests.integration.dns_gateway:create_app

The stand-in reads ``DNS_HOSTS_FILE`` (JSON: host name -> list of addresses) at every lookup,
so a test changes what a name resolves to by rewriting the file, as a headless Service's DNS
answer changes when its pods come and go; a name not in the file is unknown (NXDOMAIN).
Everything else is the production gateway.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from gateway.app import GatewayApp
from gateway.app import create_app as create_gateway
from gateway.dns import UnknownHost
from gateway.settings import load_settings

HOSTS_FILE_ENV = "DNS_HOSTS_FILE"


async def resolve_from_file(host: str, port: int) -> list[str]:
    table = json.loads(Path(os.environ[HOSTS_FILE_ENV]).read_text())
    found = table.get(host)
    if not found:
        raise UnknownHost(host)
    return [str(address) for address in found]


def create_app() -> GatewayApp:
    return create_gateway(load_settings(), resolver=resolve_from_file)
