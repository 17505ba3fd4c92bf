"""GET a JSON document from a running gateway, every failure one line an operator can act on."""

from __future__ import annotations

from typing import Any

import httpx

from cli.base import CommandError

__all__ = ["STATUS_TIMEOUT_S", "fetch_json"]

STATUS_TIMEOUT_S = 3.0


def fetch_json(
    url: str,
    path: str,
    *,
    transport: httpx.BaseTransport | None = None,
    timeout: float = STATUS_TIMEOUT_S,
) -> dict[str, Any]:
    """GET ``<url><path>`` and its JSON object; every failure becomes a one-line CommandError."""
    endpoint = url.rstrip("/") + path
    try:
        with httpx.Client(transport=transport, timeout=timeout) as client:
            response = client.get(endpoint)
    except httpx.ConnectError:
        raise CommandError(
            f"no gateway answering at {url} (--url or $STREAMFLOW_URL for another)"
        ) from None
    except httpx.TimeoutException:
        raise CommandError(f"gateway at {url} did not answer within {timeout:g} s") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise CommandError(f"cannot reach a gateway at {url}: {exc}") from None
    if response.status_code != 200:
        said = f"gateway at {url} answered GET {path} with {response.status_code}"
        raise CommandError(f"{said}: {detail}" if (detail := _detail(response)) else said)
    try:
        data = response.json()
    except ValueError:
        raise CommandError(f"gateway at {url} answered GET {path} with non-JSON") from None
    if not isinstance(data, dict):
        raise CommandError(f"gateway at {url} answered GET {path} with no JSON object")
    return data


def _detail(response: httpx.Response) -> str | None:
    """The gateway's own words for an error (its JSON ``detail``), when it gave any."""
    try:
        body = response.json()
    except ValueError:
        return None
    detail = body.get("detail") if isinstance(body, dict) else None
    return detail if isinstance(detail, str) and detail else None
