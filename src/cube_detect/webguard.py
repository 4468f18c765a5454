"""The rules every page we serve follows (the review page, the detector's live view): loopback by
default, a random token in the URL otherwise, a Host header check against DNS rebinding, the
token never in a log line."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
import secrets
import threading
from typing import Optional, Sequence, Tuple

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
#: The header a page's own requests may carry the token in (the review page's script sends it).
TOKEN_HEADER = "X-Review-Token"
HIDDEN = "[hidden]"
_TOKEN_QUERY = re.compile(r"(token=)[^&\s#'\"]+", re.IGNORECASE)
_TOKEN_HEADER_LINE = re.compile(rf"({TOKEN_HEADER}:\s*)\S+", re.IGNORECASE)


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


# --------------------------------------------------------------------------- the token, out of logs


def scrub(text: str, tokens: Sequence[str] = ()) -> str:
    """``text`` without any token, what may go into a log line: every ``token=...`` value, the
    token header's value, and every one of ``tokens`` wherever it stands."""
    text = _TOKEN_HEADER_LINE.sub(rf"\g<1>{HIDDEN}", _TOKEN_QUERY.sub(rf"\g<1>{HIDDEN}", text))
    for token in tokens:
        text = text.replace(token, HIDDEN)
    return text


class _ScrubTokens(logging.Filter):
    """Rewrites log records that would carry a token (:func:`scrub`, with the served tokens)."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens: Tuple[str, ...] = ()  # replaced, never changed in place: safe to read from any thread
        self._lock = threading.Lock()

    def add(self, token: str) -> None:
        with self._lock:
            self.tokens = tuple(set(self.tokens) | {token})

    def discard(self, token: str) -> None:
        with self._lock:
            self.tokens = tuple(t for t in self.tokens if t != token)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error report
            return True
        clean = scrub(message, self.tokens)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


_SCRUB = _ScrubTokens()


def scrub_logs(logger_names: Sequence[str], token: Optional[str] = None) -> None:
    """Scrub every record logged to these loggers (a logger's filter sees only its own records,
    not its children's: name each one), and hide ``token`` wherever it stands until
    :func:`forget_token`."""
    for name in logger_names:
        logger = logging.getLogger(name)
        if _SCRUB not in logger.filters:
            logger.addFilter(_SCRUB)
    if token:
        _SCRUB.add(token)


def forget_token(token: str) -> None:
    """``token``'s server has stopped: log filters stop looking for it."""
    _SCRUB.discard(token)
