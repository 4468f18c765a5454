"""The rules every page we serve follows (the review page, the detector's live view): loopback by
default, a random token in the URL otherwise, a Host header check against DNS rebinding, the
token never in a log line."""

from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
from typing import Optional

#: Security headers on every answer: no foreign scripts or frames, no sniffing, no embedding by
#: other sites (``Cross-Origin-Resource-Policy``), nothing cached (live data, and the token).
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_TOKEN_IN_URL = re.compile(r"(token=)[^&\s]*")


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str:
    """``"127.0.0.1:8765"`` -> ``"127.0.0.1"``, ``"[::1]:80"`` -> ``"::1"``."""
    if host_header.startswith("["):
        return host_header[1:].split("]", 1)[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def token_for(host: str) -> Optional[str]:
    """None on a loopback address (only this machine can connect), else a fresh random token."""
    return None if is_loopback(host) else secrets.token_urlsafe(16)


def allowed(host_header: str, given_token: Optional[str], token: Optional[str], loopback_only: bool) -> bool:
    """Whether a request may be answered: the right token when one is set, and on a loopback-only
    server a loopback Host header (a DNS-rebinding page cannot pass)."""
    if loopback_only and not is_loopback(host_name(host_header or "")):
        return False
    if token is not None and not hmac.compare_digest((given_token or "").encode(), token.encode()):
        return False
    return True


def scrub(text: str) -> str:
    """``text`` with any ``token=...`` replaced: what may go into a log line."""
    return _TOKEN_IN_URL.sub(r"\1[hidden]", text)
