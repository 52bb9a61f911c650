"""The web pages: registration form and "check your inbox" with live delivery status, the
verification and password reset links (a GET shows a button; only the POST uses the token),
a forgot-password form and a sign-in form. Every page is a client of the gRPC API.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from registration.entrypoints.grpc.callers import END_USER_ADDRESS
from registration.entrypoints.grpc.client import open_channel
from registration.entrypoints.web.errors import (
    GENERAL,
    UNAVAILABLE,
    Problems,
    delivery_reason,
    problems_of,
)
from registration.entrypoints.web.security import (
    CSRF_FIELD,
    Csrf,
    SecurityHeaders,
    browser_address,
)
from registration.settings import Settings
from registration.v1 import registration_pb2 as pb
from registration.v1 import registration_pb2_grpc as pb_grpc

log = logging.getLogger("registration.entrypoints.web")
HERE = Path(__file__).resolve().parent
CALL_TIMEOUT_SECONDS = 30.0

# What a page says for a status code that carries no field at fault.
REGISTER_ERRORS = {
    grpc.StatusCode.ALREADY_EXISTS: (
        "This address already has an account. Sign in, or reset your password."
    ),
}
VERIFY_OUTCOMES = {
    grpc.StatusCode.NOT_FOUND: (
        "not-valid",
        "This link is not valid. It may have been replaced by a newer email.",
    ),
    grpc.StatusCode.INVALID_ARGUMENT: ("not-valid", "This link is not valid."),
    grpc.StatusCode.FAILED_PRECONDITION: (
        "expired",
        "This link has expired. Please register again.",
    ),
}
RESET_ERRORS = {
    grpc.StatusCode.NOT_FOUND: "This link is not valid. Ask for a new one.",
    grpc.StatusCode.INVALID_ARGUMENT: "This link is not valid. Ask for a new one.",
}
SIGN_IN_ERRORS = {
    grpc.StatusCode.UNAUTHENTICATED: "Wrong email or password.",
    grpc.StatusCode.FAILED_PRECONDITION: (
        "Your email address is not verified yet: open the link in the email we sent you."
    ),
    grpc.StatusCode.RESOURCE_EXHAUSTED: "Too many attempts for this address.",
}


class Pages:
    def __init__(self, settings: Settings, grpc_target: str) -> None:
        self._settings = settings
        self.csrf = Csrf(
            settings.resolved_secret_key(), secure=settings.public_base_url.startswith("https:")
        )
        self._target = grpc_target
        self._channel: grpc.aio.Channel | None = None
        self.stub: pb_grpc.RegistrationServiceStub | None = None
        self._templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
        )

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self._channel = open_channel(self._settings, self._target)
        self.stub = pb_grpc.RegistrationServiceStub(self._channel)
        try:
            yield
        finally:
            await self._channel.close()

    def on_behalf_of(self, request: Request) -> tuple[tuple[str, str]]:
        """The browser's address, which the server counts abuse limits under: this client
        is one it trusts to say so (`forwards_addresses`)."""
        address = browser_address(request, self._settings.web_trusted_proxies)
        return ((END_USER_ADDRESS, address),)

    @property
    def api(self) -> pb_grpc.RegistrationServiceStub:
        assert self.stub is not None, "the app has not started"
        return self.stub

    def render(
        self, request: Request, template: str, status_code: int = 200, **values: Any
    ) -> HTMLResponse:
        page = self._templates.get_template(template).render(
            app_name=self._settings.app_name,
            csrf_token=self.csrf.token(request),
            csrf_field=CSRF_FIELD,
            **values,
        )
        return HTMLResponse(page, status_code=status_code)

    async def form(self, request: Request) -> dict[str, str] | HTMLResponse:
        """The posted form, or the page that refuses it (CSRF)."""
        form = await request.form()
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        if not self.csrf.valid(request, values.get(CSRF_FIELD)):
            return self.render(
                request,
                "message.html",
                status_code=403,
                title="This form has expired",
                message="Please go back, reload the page and send the form again.",
            )
        return values

    # Registration ---------------------------------------------------------------------------

    async def register_form(self, request: Request) -> HTMLResponse:
        return self.render(request, "register.html", values={}, problems=Problems())

    async def register(self, request: Request) -> HTMLResponse | RedirectResponse:
        form = await self.form(request)
        if isinstance(form, HTMLResponse):
            return form
        email, password = form.get("email", ""), form.get("password", "")
        try:
            reply = await self.api.RegisterUser(
                pb.RegisterUserRequest(email=email, password=password),
                timeout=CALL_TIMEOUT_SECONDS,
                metadata=self.on_behalf_of(request),
            )
        except grpc.aio.AioRpcError as err:
            problems = problems_of(err, REGISTER_ERRORS)
            if err.code() is grpc.StatusCode.ALREADY_EXISTS:
                problems = Problems({"email": REGISTER_ERRORS[err.code()]})
            return self.render(
                request,
                "register.html",
                status_code=400,
                values={"email": email},
                problems=problems,
            )
        return RedirectResponse(f"/registrations/{reply.registration_id}", status_code=303)

    async def check_inbox(self, request: Request) -> HTMLResponse:
        registration_id = request.path_params["registration_id"]
        hidden = self._settings.prevent_enumeration
        status = None if hidden else await self._status(request, registration_id)
        return self.render(
            request,
            "check_inbox.html",
            registration_id=registration_id,
            status=status,
            hidden=hidden,
            notice=request.query_params.get("notice"),
        )

    async def status_json(self, request: Request) -> JSONResponse:
        if self._settings.prevent_enumeration:
            # A registration's live state would tell a new address from a taken one (whose
            # registration id leads nowhere): in this mode no registration's is shown.
            return JSONResponse({"error": "no status is shown in enumeration-safe mode"}, 404)
        status = await self._status(request, request.path_params["registration_id"])
        return JSONResponse(status, status_code=200 if status else 404)

    async def _status(self, request: Request, registration_id: str) -> dict[str, Any] | None:
        """What the check-your-inbox page shows: no address, nothing personal."""
        try:
            reply = await self.api.GetRegistrationStatus(
                pb.GetRegistrationStatusRequest(registration_id=registration_id),
                timeout=CALL_TIMEOUT_SECONDS,
                metadata=self.on_behalf_of(request),
            )
        except grpc.aio.AioRpcError:
            return None
        email = (
            pb.DeliveryStatus.Name(reply.verification_email).removeprefix("DELIVERY_STATUS_")
            if reply.verification_email
            else "PENDING"
        )
        allowed_at = (
            reply.next_resend_allowed_at.ToDatetime(tzinfo=UTC)
            if reply.HasField("next_resend_allowed_at")
            else None
        )
        return {
            "registration": pb.RegistrationStatus.Name(reply.status).removeprefix(
                "REGISTRATION_STATUS_"
            ),
            "email": email,
            "reason": delivery_reason(reply.verification_email_problem),
            "resends_remaining": reply.resends_remaining,
            "resend_allowed_at": allowed_at.isoformat() if allowed_at else None,
            "resend_allowed_now": allowed_at is not None and allowed_at <= datetime.now(UTC),
        }

    async def resend(self, request: Request) -> HTMLResponse | RedirectResponse:
        form = await self.form(request)
        if isinstance(form, HTMLResponse):
            return form
        registration_id = request.path_params["registration_id"]
        notice = "resent"
        try:
            await self.api.ResendVerificationEmail(
                pb.ResendVerificationEmailRequest(registration_id=registration_id),
                timeout=CALL_TIMEOUT_SECONDS,
                metadata=self.on_behalf_of(request),
            )
        except grpc.aio.AioRpcError as err:
            notice = {
                grpc.StatusCode.RESOURCE_EXHAUSTED: "wait",
                grpc.StatusCode.FAILED_PRECONDITION: "closed",
            }.get(err.code(), "unavailable")
        if self._settings.prevent_enumeration:
            notice = "requested"  # the same words whatever happened: see status_json
        return RedirectResponse(
            f"/registrations/{registration_id}?notice={notice}", status_code=303
        )

    # The links in the emails ----------------------------------------------------------------

    async def verify_page(self, request: Request) -> HTMLResponse:
        # A GET never uses the token: mail scanners and link previews fetch links.
        return self.render(request, "verify.html", token=request.query_params.get("token", ""))

    async def verify(self, request: Request) -> HTMLResponse:
        form = await self.form(request)
        if isinstance(form, HTMLResponse):
            return form
        try:
            reply = await self.api.VerifyEmail(
                pb.VerifyEmailRequest(token=form.get("token", "")),
                timeout=CALL_TIMEOUT_SECONDS,
                metadata=self.on_behalf_of(request),
            )
        except grpc.aio.AioRpcError as err:
            outcome, message = VERIFY_OUTCOMES.get(err.code(), ("unavailable", UNAVAILABLE))
            return self.render(
                request, "verified.html", status_code=400, outcome=outcome, message=message
            )
        outcome = "already-active" if reply.already_verified else "activated"
        return self.render(request, "verified.html", outcome=outcome, message="")

    async def reset_page(self, request: Request) -> HTMLResponse:
        return self.render(
            request,
            "reset.html",
            token=request.query_params.get("token", ""),
            problems=Problems(),
        )

    async def reset(self, request: Request) -> HTMLResponse:
        form = await self.form(request)
        if isinstance(form, HTMLResponse):
            return form
        token = form.get("token", "")
        password, repeated = form.get("new_password", ""), form.get("repeat_password", "")
        if password != repeated:
            problems = Problems({"repeat_password": "The two passwords differ."})
            return self.render(
                request, "reset.html", status_code=400, token=token, problems=problems
            )
        try:
            await self.api.ResetPassword(
                pb.ResetPasswordRequest(token=token, new_password=password),
                timeout=CALL_TIMEOUT_SECONDS,
                metadata=self.on_behalf_of(request),
            )
        except grpc.aio.AioRpcError as err:
            if (
                err.code() is grpc.StatusCode.INVALID_ARGUMENT
                and "new_password" in (problems := problems_of(err, RESET_ERRORS)).by_field
            ):
                return self.render(
                    request, "reset.html", status_code=400, token=token, problems=problems
                )
            message = (
                (err.details() or "").capitalize() + "."
                if err.code() is grpc.StatusCode.FAILED_PRECONDITION
                else RESET_ERRORS.get(err.code(), UNAVAILABLE)
            )
            return self.render(request, "reset_done.html", status_code=400, message=message)
        return self.render(request, "reset_done.html", message="")

    async def forgot_form(self, request: Request) -> HTMLResponse:
        return self.render(request, "forgot.html", problems=Problems(), sent=False)

    async def forgot(self, request: Request) -> HTMLResponse:
        form = await self.form(request)
        if isinstance(form, HTMLResponse):
            return form
        try:
            await self.api.RequestPasswordReset(
                pb.RequestPasswordResetRequest(email=form.get("email", "")),
                timeout=CALL_TIMEOUT_SECONDS,
                metadata=self.on_behalf_of(request),
            )
        except grpc.aio.AioRpcError as err:
            return self.render(
                request,
                "forgot.html",
                status_code=400,
                problems=problems_of(err, {}),
                sent=False,
            )
        return self.render(request, "forgot.html", problems=Problems(), sent=True)

    # Sign-in --------------------------------------------------------------------------------

    async def sign_in_form(self, request: Request) -> HTMLResponse:
        return self.render(request, "sign_in.html", values={}, problems=Problems(), user_id=None)

    async def sign_in(self, request: Request) -> HTMLResponse:
        form = await self.form(request)
        if isinstance(form, HTMLResponse):
            return form
        email = form.get("email", "")
        try:
            reply = await self.api.Authenticate(
                pb.AuthenticateRequest(email=email, password=form.get("password", "")),
                timeout=CALL_TIMEOUT_SECONDS,
                metadata=self.on_behalf_of(request),
            )
        except grpc.aio.AioRpcError as err:
            problems = problems_of(err, SIGN_IN_ERRORS)
            if problems.retry_at is not None:
                problems.by_field[GENERAL] += f" Try again after {problems.retry_at:%H:%M:%S} UTC."
            return self.render(
                request,
                "sign_in.html",
                status_code=400,
                values={"email": email},
                problems=problems,
                user_id=None,
            )
        return self.render(
            request, "sign_in.html", values={}, problems=Problems(), user_id=reply.user_id
        )


class AccessLog:
    """One line per request, with the path only: a query string may carry a token."""

    def __init__(self, app: Any) -> None:
        self._app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, sending)
        finally:
            log.info(
                "%s %s %d %.0f ms",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000,
            )


def create_app(settings: Settings, *, grpc_target: str | None = None) -> Starlette:
    """The web front; it calls the gRPC server at `grpc_target` (default GRPC_ADDRESS)."""
    pages = Pages(settings, grpc_target or settings.grpc_address.replace("0.0.0.0", "127.0.0.1"))
    routes = [
        Route("/", pages.register_form),
        Route("/register", pages.register, methods=["POST"]),
        Route("/registrations/{registration_id}", pages.check_inbox),
        Route("/registrations/{registration_id}/status.json", pages.status_json),
        Route("/registrations/{registration_id}/resend", pages.resend, methods=["POST"]),
        Route("/verify", pages.verify_page),
        Route("/verify", pages.verify, methods=["POST"]),
        Route("/reset", pages.reset_page),
        Route("/reset", pages.reset, methods=["POST"]),
        Route("/forgot", pages.forgot_form),
        Route("/forgot", pages.forgot, methods=["POST"]),
        Route("/sign-in", pages.sign_in_form),
        Route("/sign-in", pages.sign_in, methods=["POST"]),
        Route("/healthz", lambda _: PlainTextResponse("ok")),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(
        routes=routes,
        lifespan=pages.lifespan,
        middleware=[Middleware(SecurityHeaders, csrf=pages.csrf)],
    )
