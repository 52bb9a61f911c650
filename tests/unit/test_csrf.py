"""The web pages' CSRF tokens: signed with SECRET_KEY, checked for their signature and against
the form, and kept in a `__Host-` cookie over HTTPS."""

from __future__ import annotations

from starlette.requests import Request

from registration.entrypoints.web.security import Csrf

KEY = b"k" * 32


def request_with(cookies: dict[str, str]) -> Request:
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return Request({"type": "http", "headers": [(b"cookie", cookie.encode())], "state": {}})


def test_a_token_of_the_site_passes_and_anything_else_does_not() -> None:
    csrf = Csrf(KEY, secure=False)
    token = csrf.token(request_with({}))
    assert csrf.valid(request_with({"csrf": token}), token)
    assert not csrf.valid(request_with({"csrf": token}), token + "x")
    assert not csrf.valid(request_with({"csrf": "planted"}), "planted")
    nonce = token.partition(".")[0]
    assert not csrf.valid(request_with({"csrf": f"{nonce}.forged"}), f"{nonce}.forged")
    # Another site's key (another SECRET_KEY) signs nothing here.
    other = Csrf(b"o" * 32, secure=False).token(request_with({}))
    assert not csrf.valid(request_with({"csrf": other}), other)


def test_a_planted_cookie_is_replaced_and_a_good_one_kept() -> None:
    csrf = Csrf(KEY, secure=False)
    assert csrf.token(request_with({"csrf": "planted"})) != "planted"
    good = csrf.token(request_with({}))
    assert csrf.token(request_with({"csrf": good})) == good


def test_over_https_the_cookie_is_one_no_other_host_can_set() -> None:
    csrf = Csrf(KEY, secure=True)
    assert csrf.cookie == "__Host-csrf"
    token = csrf.token(request_with({}))
    assert csrf.valid(request_with({"__Host-csrf": token}), token)
    assert not csrf.valid(request_with({"csrf": token}), token)
