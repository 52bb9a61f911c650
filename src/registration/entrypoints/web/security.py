"""What pages that carry tokens need: CSRF protection on every form, and headers that keep
tokens out of referrers, caches and other sites' frames.

CSRF is the double-submit pattern: a random token in a SameSite=Strict, HttpOnly cookie and
the same token in each form; a POST whose two do not match is refused.
"""

from __future__ import annotations

import hmac
import secrets

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


def csrf_token(request: Request) -> str:
    """The token to put in this page's forms (the cookie's, or a new one set with the page)."""
    token = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
    if token is None:
        token = secrets.token_urlsafe(32)
        request.state.new_csrf = token
    return str(token)


def csrf_valid(request: Request, submitted: object) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE)
    return (
        isinstance(submitted, str)
        and cookie is not None
        and hmac.compare_digest(cookie.encode(), submitted.encode())
    )


class SecurityHeaders(BaseHTTPMiddleware):
    def __init__(self, app: object, *, secure_cookies: bool) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self._secure = secure_cookies

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        # No page of this site is worth caching: several carry tokens or personal state.
        response.headers.setdefault("Cache-Control", "no-store")
        new_token = getattr(request.state, "new_csrf", None)
        if new_token is not None:
            response.set_cookie(
                CSRF_COOKIE,
                new_token,
                httponly=True,
                samesite="strict",
                secure=self._secure,
                path="/",
            )
        return response
