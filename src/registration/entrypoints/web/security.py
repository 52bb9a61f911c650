"""What pages that carry tokens need: CSRF protection on every form, and headers that keep
tokens out of referrers, caches and other sites' frames.

CSRF is the signed double-submit pattern: a random value and its HMAC under SECRET_KEY in a
SameSite=Strict, HttpOnly cookie, and the same token in each form; a POST passes only when the
two are equal and the signature holds, so a cookie someone else made up is worth nothing. The
pages come before any sign-in, so no session binds the token: a genuine cookie fetched from the
site and planted in a victim's browser (from a sibling subdomain, or over plain HTTP) would
pass. Over HTTPS the cookie is `__Host-csrf`, which browsers let no other host set or
overwrite; production serves the pages over HTTPS for that.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Sequence

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response

CSRF_COOKIE = "csrf"
CSRF_FIELD = "csrf_token"
# Scripts, styles and requests only from this site; no frames, no plugins, forms post here.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    # A token in a page's address never leaves in a Referer header.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class Csrf:
    """The CSRF tokens of one site: made, set and checked with one key."""

    def __init__(self, secret_key: bytes, *, secure: bool) -> None:
        self._key = hmac.new(secret_key, b"csrf-cookie", hashlib.sha256).digest()
        self.secure = secure
        self.cookie = f"__Host-{CSRF_COOKIE}" if secure else CSRF_COOKIE

    def token(self, request: Request) -> str:
        """The token of this page's forms: the cookie's, if it is one of ours, or a new one
        set with the page."""
        cookie = request.cookies.get(self.cookie)
        if cookie is not None and self._signed(cookie):
            return cookie
        new = getattr(request.state, "new_csrf", None)
        if new is None:
            nonce = secrets.token_urlsafe(24)
            new = request.state.new_csrf = f"{nonce}.{self._signature(nonce)}"
        return str(new)

    def valid(self, request: Request, submitted: object) -> bool:
        cookie = request.cookies.get(self.cookie)
        return (
            isinstance(submitted, str)
            and cookie is not None
            and hmac.compare_digest(cookie.encode(), submitted.encode())
            and self._signed(cookie)
        )

    def _signed(self, token: str) -> bool:
        nonce, _, signature = token.partition(".")
        return bool(nonce) and hmac.compare_digest(
            signature.encode(), self._signature(nonce).encode()
        )

    def _signature(self, nonce: str) -> str:
        digest = hmac.new(self._key, nonce.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class SecurityHeaders(BaseHTTPMiddleware):
    def __init__(self, app: object, *, csrf: Csrf) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self._csrf = csrf

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        # No page of this site is worth caching: several carry tokens or personal state.
        response.headers.setdefault("Cache-Control", "no-store")
        new_token = getattr(request.state, "new_csrf", None)
        if new_token is not None:
            response.set_cookie(
                self._csrf.cookie,
                new_token,
                httponly=True,
                samesite="strict",
                secure=self._csrf.secure,
                path="/",
            )
        return response


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def browser_address(request: Request, trusted_proxies: Sequence[Network]) -> str:
    """The browser's network address: the peer's, unless the peer is a trusted proxy; then
    the nearest address in X-Forwarded-For that is not one (the others a browser could have
    written itself)."""
    peer = request.client.host if request.client else ""
    chain = [peer]
    if _trusted(peer, trusted_proxies):
        forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
        chain = [peer, *reversed([a.strip() for a in forwarded.split(",") if a.strip()])]
    for address in chain:
        if not _trusted(address, trusted_proxies):
            return address
    return chain[-1]


def _trusted(address: str, trusted_proxies: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted_proxies)
