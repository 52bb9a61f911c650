"""Try the service by hand.

    python -m registration register EMAIL      password from a prompt, or stdin when piped
    python -m registration verify TOKEN        the token, or the whole link from the email
    python -m registration status REGISTRATION_ID
    python -m registration resend REGISTRATION_ID   a new verification email and link
    python -m registration login EMAIL         password from a prompt, or stdin
    python -m registration reset-password request EMAIL
    python -m registration reset-password complete TOKEN   the new password as for register
    python -m registration notify-enrollment --order-id ID --organizer-email EMAIL ...
    python -m registration notification NOTIFICATION_ID

    python -m registration confirm REGISTRATION_ID  an operator confirms the address by hand

The server address comes from --address, else from GRPC_ADDRESS (default 127.0.0.1:50051); the
CLI presents GRPC_TOKEN, or the local client's token that `make run` makes
(var/local-client.token), and speaks TLS with GRPC_CA_FILE (docs/security.md).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC
from pathlib import Path
from typing import cast
from urllib.parse import parse_qs, urlsplit

import grpc
from google.protobuf import timestamp_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from registration.entrypoints.grpc.client import open_sync_channel
from registration.settings import load_settings
from registration.v1 import registration_pb2 as pb
from registration.v1 import registration_pb2_grpc as pb_grpc

TIMEOUT_SECONDS = 30.0


def _when(stamp: timestamp_pb2.Timestamp, present: bool = True) -> str:
    if not present:
        return "-"
    return stamp.ToDatetime(tzinfo=UTC).isoformat(timespec="seconds")


def _status_name(enum: object, value: int) -> str:
    name: str = enum.Name(value)  # type: ignore[attr-defined]
    return name.split("_STATUS_", 1)[-1].split("EMAIL_KIND_", 1)[-1]


def read_password(*, confirm: bool = True, prompt: str = "Password: ") -> str:
    if sys.stdin.isatty():
        first = getpass.getpass(prompt)
        if confirm and getpass.getpass("Repeat password: ") != first:
            raise SystemExit("the passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def token_from(value: str) -> str:
    """The token itself, or the token taken from a pasted verification or reset link."""
    if "://" in value:
        tokens = parse_qs(urlsplit(value).query).get("token", [])
        return tokens[0] if tokens else ""
    return value


def describe_error(err: grpc.RpcError) -> str:
    call = cast(grpc.Call, err)  # every RpcError of a unary call is also its grpc.Call
    lines = [f"error: {call.code().name}: {call.details()}"]
    status = rpc_status.from_call(call)
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                lines += [f"  {v.field}: {v.description}" for v in bad.field_violations]
            elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                retry_at = info.metadata.get("retry_at")
                lines.append(
                    f"  {info.reason}" + (f": allowed again at {retry_at}" if retry_at else "")
                )
    return "\n".join(lines)


def print_registration(reg: pb.Registration) -> None:
    print(f"registration_id: {reg.registration_id}")
    print(f"user_id:         {reg.user_id}")
    print(f"email:           {reg.email}")
    print(f"status:          {_status_name(pb.RegistrationStatus, reg.status)}")
    print(f"created_at:      {_when(reg.created_at)}")
    print(f"verified_at:     {_when(reg.verified_at, reg.HasField('verified_at'))}")
    print(f"expires_at:      {_when(reg.expires_at)}")
    for d in reg.deliveries:
        print(
            f"email {_status_name(pb.EmailKind, d.kind).lower()}: "
            f"{_status_name(pb.DeliveryStatus, d.status)}, attempts={d.attempts}, "
            f"sent_at={_when(d.sent_at, d.HasField('sent_at'))}"
            + (f", last_error={d.last_error}" if d.last_error else "")
        )
    if reg.status == pb.REGISTRATION_STATUS_PENDING_VERIFICATION:
        print(
            f"resends_remaining: {reg.resends_remaining}, next allowed at "
            f"{_when(reg.next_resend_allowed_at, reg.HasField('next_resend_allowed_at'))}"
        )


def print_notification(notification: pb.Notification) -> None:
    d = notification.delivery
    print(f"notification_id: {notification.notification_id}")
    print(f"order_id:        {notification.order_id}")
    print(f"recipient:       {notification.recipient}")
    print(f"created_at:      {_when(notification.created_at)}")
    print(
        f"email {_status_name(pb.EmailKind, d.kind).lower()}: "
        f"{_status_name(pb.DeliveryStatus, d.status)}, attempts={d.attempts}, "
        f"sent_at={_when(d.sent_at, d.HasField('sent_at'))}"
        + (f", last_error={d.last_error}" if d.last_error else "")
    )


def open_channel(args: argparse.Namespace) -> grpc.Channel:
    """To --address (default GRPC_ADDRESS), with the TLS and token settings of every client of
    ours; --ca-file stands for GRPC_CA_FILE."""
    settings = load_settings(needs_secrets=False)
    if args.ca_file is not None:
        settings = settings.model_copy(update={"grpc_ca_file": args.ca_file})
    return open_sync_channel(settings, args.address)


def run(args: argparse.Namespace) -> int:
    with open_channel(args) as channel:
        stub = pb_grpc.RegistrationServiceStub(channel)
        try:
            if args.command == "register":
                password = read_password()
                reply = stub.RegisterUser(
                    pb.RegisterUserRequest(email=args.email, password=password),
                    timeout=TIMEOUT_SECONDS,
                )
                print(f"registration_id: {reply.registration_id}")
                print(f"status:          {_status_name(pb.RegistrationStatus, reply.status)}")
                print(f"expires_at:      {_when(reply.expires_at)}")
                print("A verification link is on its way to the mailbox.")
            elif args.command in ("verify", "confirm"):
                verified = (
                    stub.VerifyEmail(
                        pb.VerifyEmailRequest(token=token_from(args.token)),
                        timeout=TIMEOUT_SECONDS,
                    )
                    if args.command == "verify"
                    else stub.ConfirmRegistration(
                        pb.ConfirmRegistrationRequest(registration_id=args.registration_id),
                        timeout=TIMEOUT_SECONDS,
                    )
                )
                print(f"registration_id: {verified.registration_id}")
                print(f"user_id:         {verified.user_id}")
                print(f"status:          {_status_name(pb.RegistrationStatus, verified.status)}")
            elif args.command == "resend":
                resent = stub.ResendVerificationEmail(
                    pb.ResendVerificationEmailRequest(registration_id=args.registration_id),
                    timeout=TIMEOUT_SECONDS,
                )
                allowed = resent.HasField("next_resend_allowed_at")
                print("A new verification link is on its way; the previous one no longer works.")
                print(f"resends_remaining: {resent.resends_remaining}")
                print(f"next resend at:    {_when(resent.next_resend_allowed_at, allowed)}")
            elif args.command == "login":
                signed_in = stub.Authenticate(
                    pb.AuthenticateRequest(email=args.email, password=read_password(confirm=False)),
                    timeout=TIMEOUT_SECONDS,
                )
                print(f"signed in: user_id {signed_in.user_id}")
            elif args.command == "reset-password" and args.step == "request":
                stub.RequestPasswordReset(
                    pb.RequestPasswordResetRequest(email=args.email), timeout=TIMEOUT_SECONDS
                )
                print("If the address has an active account, a reset link is on its way.")
            elif args.command == "reset-password":
                stub.ResetPassword(
                    pb.ResetPasswordRequest(
                        token=token_from(args.token),
                        new_password=read_password(prompt="New password: "),
                    ),
                    timeout=TIMEOUT_SECONDS,
                )
                print("The password was changed; sign in with the new one.")
            elif args.command == "notify-enrollment":
                notified = stub.NotifyEnrollment(
                    pb.NotifyEnrollmentRequest(
                        order_id=args.order_id,
                        organizer_email=args.organizer_email,
                        organizer_name=args.organizer_name,
                        enrollee_name=args.enrollee_name,
                        enrollee_email=args.enrollee_email,
                        offering_name=args.offering_name,
                    ),
                    timeout=TIMEOUT_SECONDS,
                )
                print(f"notification_id: {notified.notification_id}")
            elif args.command == "notification":
                shown = stub.GetNotification(
                    pb.GetNotificationRequest(notification_id=args.notification_id),
                    timeout=TIMEOUT_SECONDS,
                )
                print_notification(shown.notification)
            else:
                got = stub.GetRegistration(
                    pb.GetRegistrationRequest(registration_id=args.registration_id),
                    timeout=TIMEOUT_SECONDS,
                )
                print_registration(got.registration)
        except grpc.RpcError as err:
            print(describe_error(err), file=sys.stderr)
            return 1
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m registration",
        description="A command-line client of the registration service.",
    )
    parser.add_argument(
        "--address", help="host:port of the gRPC server (default: GRPC_ADDRESS or 127.0.0.1:50051)"
    )
    parser.add_argument(
        "--ca-file",
        type=Path,
        help="speak TLS, trusting the certificates in this PEM file (for GRPC_TLS_* servers)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    register = commands.add_parser(
        "register", help="register an email; the password is read from a prompt or stdin"
    )
    register.add_argument("email")
    verify = commands.add_parser(
        "verify", help="verify with the token from the email's link, or the whole link"
    )
    verify.add_argument("token")
    status = commands.add_parser("status", help="show a registration and its emails")
    status.add_argument("registration_id")
    confirm = commands.add_parser(
        "confirm", help="confirm a pending registration's address by hand (back office)"
    )
    confirm.add_argument("registration_id")
    resend = commands.add_parser(
        "resend", help="send a new verification email; the previous link stops working"
    )
    resend.add_argument("registration_id")
    login = commands.add_parser(
        "login", help="sign in; the password is read from a prompt or stdin"
    )
    login.add_argument("email")
    reset = commands.add_parser("reset-password", help="reset a forgotten password by email")
    reset_steps = reset.add_subparsers(dest="step", required=True)
    reset_request = reset_steps.add_parser(
        "request", help="email a reset link, if the address has an active account"
    )
    reset_request.add_argument("email")
    reset_complete = reset_steps.add_parser(
        "complete",
        help="set a new password (from a prompt or stdin) with the token from the reset link, "
        "or the whole link",
    )
    reset_complete.add_argument("token")
    notify = commands.add_parser(
        "notify-enrollment", help="tell an organizer by email that an enrollment succeeded"
    )
    notify.add_argument("--order-id", required=True, help="the shop's order id")
    notify.add_argument("--organizer-email", required=True)
    notify.add_argument("--organizer-name", default="")
    notify.add_argument("--enrollee-name", required=True)
    notify.add_argument("--enrollee-email", default="")
    notify.add_argument("--offering-name", required=True)
    notification = commands.add_parser(
        "notification", help="show a notification and its email's delivery"
    )
    notification.add_argument("notification_id")
    args = parser.parse_args(argv)
    sys.exit(run(args))


if __name__ == "__main__":
    main()
