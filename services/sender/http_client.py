"""What the HTTP providers (kumomta.py, http_json.py) share: a pooled httpx client
built from a provider URL, and the mapping of transport failures and status codes."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from services.sender.outcome import Outcome


def http_target(url: str, default_path: str = "") -> tuple[str, httpx.BasicAuth | None]:
    """`kumomta+https://user:pw@host:8000` -> (`https://host:8000<path>`, basic auth)."""
    parts = urlsplit(url)
    scheme = "https" if "https" in parts.scheme.split("+") else "http"
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    auth = None
    if parts.username:
        auth = httpx.BasicAuth(unquote(parts.username), unquote(parts.password or ""))
    return urlunsplit((scheme, netloc, parts.path or default_path, parts.query, "")), auth


def make_client(timeout: float, pool_size: int, auth: httpx.BasicAuth | None) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size)
    # never follow redirects: a provider answering 3xx is misconfigured, not a hop to take
    return httpx.AsyncClient(timeout=timeout, limits=limits, auth=auth, follow_redirects=False)


def transport_failure(exc: httpx.HTTPError) -> Outcome:
    """No answer (refused, timeout, TLS, a drop): the provider's failure."""
    return Outcome("deferred", None, f"{type(exc).__name__}: {exc}", connection=True)


def status_outcome(response: httpx.Response) -> Outcome | None:
    """The outcome a non-2xx status decides (None for 2xx): 5xx, 429, 401/403 and
    3xx are the provider's trouble (deferred, failed over); other 4xx refuse the mail."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    text = f"HTTP {status}: {response.text[:300]}"
    if status >= 500 or status in (401, 403, 407, 429) or status < 400:
        return Outcome("deferred", None, text, connection=True)
    return Outcome("bounced", None, text)
