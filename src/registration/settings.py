"""The one source of configuration: environment variables and an optional `.env` file."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import idna
from jinja2 import Environment, TemplateSyntaxError
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from registration.adapters.temporal.payload_codec import PayloadKeys

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: object) -> object:
    """Accept "90", "90s", "15m", "24h", "7d", "250ms" beside pydantic's own ISO 8601 ("PT24H")."""
    if isinstance(value, str) and (match := _DURATION_RE.match(value)):
        return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    return value


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be a positive duration")
    return value


def _not_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("must be zero or a positive duration")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_positive)]
DurationOrZero = Annotated[
    timedelta, BeforeValidator(parse_duration), AfterValidator(_not_negative)
]


@dataclass(frozen=True)
class Rate:
    """At most `count` uses in every `window`."""

    count: int
    window: timedelta

    def __str__(self) -> str:
        return f"{self.count}/{self.window}"


def parse_rate(value: object) -> object:
    """ "30/1h": 30 uses an hour (any duration of parse_duration)."""
    if isinstance(value, str):
        count, slash, window = value.partition("/")
        duration = parse_duration(window)
        if not slash or not count.strip().isdigit() or not isinstance(duration, timedelta):
            raise ValueError('must be a count and a duration, like "30/1h"')
        if int(count) < 1 or duration <= timedelta(0):
            raise ValueError("the count and the duration must be positive")
        return Rate(int(count), duration)
    return value


# NoDecode: the environment spells it "30/1h", which is no JSON.
RateLimitSetting = Annotated[Rate, NoDecode, BeforeValidator(parse_rate)]

MIN_SECRET_KEY_LENGTH = 32

# Argon2id floor from OWASP's password storage guidance (m=19 MiB, t=2, p=1).
ARGON2_MIN_MEMORY_KIB = 19456
ARGON2_MIN_TIME_COST = 2


GrpcPermission = Literal["public", "back_office"]


class GrpcClient(BaseModel):
    """One caller of the gRPC API: how it proves who it is, and what it may call."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    # SHA-256 (hex) of its bearer token: the token itself is never configured.
    token_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    # The common name of its client certificate (GRPC_TLS_CLIENT_CA_FILE).
    certificate: str | None = None
    permissions: list[GrpcPermission] = Field(min_length=1)
    # It serves many end users (the web pages, a back end) and says whose call each is in
    # the `end-user-address` metadata: the abuse limits then count that address as the
    # source. From any other caller the metadata is ignored and the connection's peer counts.
    forwards_addresses: bool = False

    @model_validator(mode="after")
    def _proves_itself(self) -> GrpcClient:
        if self.token_sha256 is None and self.certificate is None:
            raise ValueError(f"client {self.name!r} needs token_sha256 or certificate")
        return self


class Settings(BaseSettings):
    """Every setting of the service; each field is read from the environment variable of the
    same name in upper case. The defaults run the whole stack on one machine (`make run`)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    environment: Literal["development", "production"] = Field(
        "development",
        description="In production no secret is ever generated: SECRET_KEY and the payload "
        "keys must be given, or the processes refuse to start.",
    )

    # Temporal
    temporal_address: str = Field("127.0.0.1:7233", description="Temporal frontend host:port.")
    temporal_namespace: str = Field("default", description="Temporal namespace.")
    temporal_task_queue: str = Field("registration", description="Task queue of the worker.")
    email_task_queue: str = Field(
        "registration-email",
        description="Task queue of the email sends, rate-limited by EMAIL_SENDS_PER_SECOND.",
    )
    email_sends_per_second: float = Field(
        10.0,
        gt=0,
        description="Most email send attempts per second across all workers (Temporal "
        "enforces it per task queue; give every worker the same value).",
    )
    notification_task_queue: str = Field(
        "registration-notifications",
        description="Task queue of the organizer notifications and their sends, apart from "
        "registration so that a backlog there never slows it.",
    )
    notification_sends_per_second: float = Field(
        10.0,
        gt=0,
        description="Most notification send attempts per second across all workers.",
    )
    worker_max_cached_workflows: int = Field(
        250,
        ge=0,
        description="Workflows a worker keeps in memory between their tasks; one not kept is "
        "replayed from its history when its next task comes. Fewer: less memory; more: fewer "
        "replays.",
    )
    temporal_connect_timeout: Duration = Field(
        timedelta(seconds=30),
        description="How long server and worker keep retrying to reach Temporal at start.",
    )
    temporal_tls: bool = Field(
        False,
        description="Reach Temporal over TLS (on by itself when a TEMPORAL_TLS_* file is set).",
    )
    temporal_tls_ca_file: Path | None = Field(
        None,
        description="PEM of the CA that signed the Temporal frontend's certificate (else the "
        "system's roots).",
    )
    temporal_tls_cert_file: Path | None = Field(
        None,
        description="PEM certificate (chain) our processes present to Temporal: mutual TLS.",
    )
    temporal_tls_key_file: Path | None = Field(
        None, description="PEM private key of TEMPORAL_TLS_CERT_FILE."
    )
    temporal_tls_server_name: str | None = Field(
        None,
        description="The name in the frontend's certificate, when TEMPORAL_ADDRESS names it "
        "otherwise.",
    )

    # gRPC API
    grpc_address: str = Field("127.0.0.1:50051", description="Where the gRPC server listens.")
    grpc_tls_cert_file: Path | None = Field(
        None, description="PEM certificate chain; with GRPC_TLS_KEY_FILE the server speaks TLS."
    )
    grpc_tls_key_file: Path | None = Field(None, description="PEM private key of that certificate.")
    grpc_tls_client_ca_file: Path | None = Field(
        None,
        description="PEM of the CA whose client certificates the server accepts: every caller "
        "then presents one (mutual TLS; its common name names the caller in GRPC_CLIENTS).",
    )
    grpc_clients: list[GrpcClient] = Field(
        [],
        description="Who may call the gRPC API, and which methods (JSON list of "
        '`{"name", "token_sha256" or "certificate", "permissions"}`); empty: in development '
        "the one local client of GRPC_LOCAL_TOKEN_FILE, in production nobody.",
    )
    grpc_local_token_file: Path = Field(
        Path("var/local-client.token"),
        description="Outside production, with GRPC_CLIENTS empty: the server creates this "
        "full-access token on first start, and the CLI and the web pages present it.",
    )
    # How our own clients (web pages, CLI, health probe, load run) reach GRPC_ADDRESS.
    grpc_ca_file: Path | None = Field(
        None,
        description="PEM of the CA that signed the gRPC server's certificate: our clients "
        "speak TLS with it.",
    )
    grpc_client_cert_file: Path | None = Field(
        None, description="PEM certificate our clients present to the gRPC server."
    )
    grpc_client_key_file: Path | None = Field(
        None, description="PEM private key of GRPC_CLIENT_CERT_FILE."
    )
    grpc_server_name: str | None = Field(
        None,
        description="The name in the gRPC server's certificate, when GRPC_ADDRESS names it "
        "otherwise.",
    )
    grpc_token: SecretStr | None = Field(
        None,
        description="The bearer token our clients present (else the one in "
        "GRPC_LOCAL_TOKEN_FILE, when it exists).",
    )
    health_check_interval: Duration = Field(
        timedelta(seconds=5),
        description="How often the server checks that Temporal and the database answer.",
    )
    grpc_shutdown_delay: Duration = Field(
        timedelta(seconds=1),
        description="On SIGTERM, how long health reports NOT_SERVING while calls are still "
        "accepted, so that load balancers stop sending before the listener closes.",
    )
    grpc_shutdown_grace: Duration = Field(
        timedelta(seconds=10), description="How long in-flight calls may finish on shutdown."
    )
    update_timeout: Duration = Field(
        timedelta(seconds=30),
        description="How long VerifyEmail, ResendVerificationEmail and ResetPassword wait for "
        "the workflow to answer (the client's deadline, when shorter, wins); past it they "
        "answer UNAVAILABLE (safe to repeat).",
    )

    # Database
    database_url: str = Field(
        "sqlite:///var/registration.db",
        description="SQLAlchemy URL of the database; a SQLite file by default.",
    )

    # Secrets
    secret_key: SecretStr | None = Field(
        None,
        description="Key for verification tokens and pseudonymous workflow IDs. "
        "When unset, a random key is created once in SECRET_KEY_FILE.",
    )
    secret_key_file: Path = Field(
        Path("var/secret.key"),
        description="Where the generated key is kept when SECRET_KEY is unset.",
    )

    payload_keys: SecretStr | None = Field(
        None,
        description="Keys that encrypt Temporal payloads: `id=base64(32 bytes)` entries, "
        "comma-separated; the first encrypts, all decrypt. When unset, PAYLOAD_KEYS_FILE.",
    )
    payload_keys_file: Path = Field(
        Path("var/payload.keys"),
        description="File of payload keys, one entry a line; created with one random key "
        "on first use outside production.",
    )
    payload_legacy_key_ids: list[str] = Field(
        [],
        description="Ids of payload keys whose payloads from before payloads were bound to "
        "their workflow are still accepted, while workflows started before that upgrade "
        "finish (JSON list); none by default.",
    )

    # Codec endpoint for the Temporal web UI
    codec_server_address: str = Field(
        "127.0.0.1:8081", description="Where the payload codec endpoint listens."
    )
    codec_cors_origins: list[str] = Field(
        ["http://127.0.0.1:8233", "http://localhost:8233"],
        description="Web UI origins allowed to call the codec endpoint (JSON list).",
    )
    codec_access_token: SecretStr | None = Field(
        None,
        description="A bearer token the codec endpoint accepts from operators (the Temporal "
        "UI, `temporal --codec-auth 'Bearer …'`); at least 32 characters.",
    )
    codec_jwks_url: str | None = Field(
        None,
        description="The identity provider's JWKS: the codec endpoint accepts a JWT it signed "
        "(the operator's access token, which the Temporal UI forwards with "
        "TEMPORAL_CODEC_PASS_ACCESS_TOKEN) for CODEC_JWT_AUDIENCE from CODEC_JWT_ISSUER.",
    )
    codec_jwt_issuer: str | None = Field(None, description="The `iss` a codec JWT must name.")
    codec_jwt_audience: str | None = Field(None, description="The `aud` a codec JWT must name.")

    # Registration rules
    verification_timeout: Duration = Field(
        timedelta(hours=24), description="How long a registration waits for verification."
    )
    prevent_enumeration: bool = Field(
        False,
        description="Answer RegisterUser for an address that has an account exactly as for a "
        "new one, and email the owner instead of answering ALREADY_EXISTS.",
    )
    registration_attempt_cooldown: Duration = Field(
        timedelta(hours=1),
        description="With PREVENT_ENUMERATION: at most one notice email per address this often.",
    )
    resend_cooldown: Duration = Field(
        timedelta(seconds=60),
        description="ResendVerificationEmail: shortest time between two verification emails.",
    )
    resend_limit: int = Field(
        5, ge=0, description="ResendVerificationEmail: most resends per registration."
    )
    verification_reminder: bool = Field(
        True, description="Email a reminder while a registration is still unverified."
    )
    verification_reminder_at: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="When the reminder goes out, as a fraction of VERIFICATION_TIMEOUT.",
    )
    sign_in_max_failures: int = Field(
        5,
        ge=1,
        description="Authenticate: this many failures for one address from one source within "
        "SIGN_IN_LOCKOUT lock that source out of it for SIGN_IN_LOCKOUT, twice as long after "
        "the next run of failures, and so on up to a day.",
    )
    sign_in_lockout: Duration = Field(
        timedelta(minutes=15),
        description="Authenticate: the window failures are counted in, and how long a first "
        "lock lasts.",
    )
    rate_limit_sign_ins: RateLimitSetting = Field(
        Rate(30, timedelta(minutes=5)),
        description="Authenticate calls one source may make (`30/5m`: 30 every 5 minutes).",
    )
    rate_limit_emails_per_mailbox: RateLimitSetting = Field(
        Rate(10, timedelta(hours=1)),
        description="Calls that send an email one mailbox may get (its case and +tag folded); "
        "a reset link's own ResetPassword is not counted.",
    )
    rate_limit_emails_per_source: RateLimitSetting = Field(
        Rate(30, timedelta(hours=1)),
        description="Calls that send an email one source may make.",
    )
    rate_limit_notifications_per_mailbox: RateLimitSetting = Field(
        Rate(300, timedelta(hours=1)),
        description="NotifyEnrollment calls one organizer's mailbox may get (no source is "
        "counted: the back office speaks for every enrollment).",
    )
    password_reset_timeout: Duration = Field(
        timedelta(hours=1), description="How long a password reset link works."
    )
    password_min_length: int = Field(
        15,
        ge=8,
        description="Shortest password accepted, in characters (NIST SP 800-63B rev 4: 15 "
        "for a password that is the only factor).",
    )
    password_max_length: int = Field(1024, ge=64, description="Longest password accepted.")
    argon2_time_cost: int = Field(
        ARGON2_MIN_TIME_COST, ge=ARGON2_MIN_TIME_COST, description="argon2id iterations."
    )
    argon2_memory_cost_kib: int = Field(
        ARGON2_MIN_MEMORY_KIB, ge=ARGON2_MIN_MEMORY_KIB, description="argon2id memory in KiB."
    )
    argon2_parallelism: int = Field(1, ge=1, description="argon2id lanes.")

    # Email delivery retries (a named Temporal RetryPolicy is built from these)
    email_retry_initial_interval: Duration = Field(
        timedelta(seconds=1), description="Wait before the second attempt of an email."
    )
    email_retry_backoff_coefficient: float = Field(
        2.0, ge=1.0, description="Each wait is this many times the previous one."
    )
    email_retry_maximum_interval: Duration = Field(
        timedelta(minutes=5), description="Longest wait between two attempts."
    )
    email_retry_budget: Duration = Field(
        timedelta(hours=1), description="Total time one email may spend on attempts and waits."
    )

    # SMTP
    smtp_host: str = Field("127.0.0.1", description="SMTP relay host.")
    smtp_port: int = Field(1025, gt=0, lt=65536, description="SMTP relay port.")
    smtp_user: str | None = Field(None, description="SMTP login; no login when unset.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password.")
    smtp_starttls: bool = Field(False, description="Upgrade the connection with STARTTLS.")
    smtp_tls: bool = Field(False, description="Connect with implicit TLS (usually port 465).")
    smtp_timeout: Duration = Field(timedelta(seconds=30), description="Timeout of one SMTP step.")
    smtp_keep_alive: DurationOrZero = Field(
        timedelta(seconds=10),
        description="How long a connection to the relay stays open after an email, for the "
        "next one; 0: a connection of its own for every email.",
    )
    smtp_from_email: str = Field(
        "no-reply@registration.localhost", description="Sender address of every email."
    )
    smtp_from_name: str = Field("Durable Registration", description="Sender display name.")
    app_name: str = Field("Durable Registration", description="Product name used in emails.")
    email_templates_dir: Path | None = Field(
        None,
        description="Folder of email templates (`<kind>.subject.txt`, `.txt`, `.html`) that "
        "replaces the bundled one; read again on change, without a restart.",
    )
    web_address: str | None = Field(
        None,
        description="Where the web pages (verification and reset links, registration form) "
        "listen; the host and port of PUBLIC_BASE_URL when unset.",
    )
    web_trusted_proxies: list[IPvAnyNetwork] = Field(
        [],
        description="Proxies in front of the web pages (JSON list of addresses or networks): "
        "a browser's address is taken from X-Forwarded-For only past these.",
    )
    enrollment_subject: str = Field(
        "New enrollment: {{ offering_name }}",
        description="Subject of the organizer's enrollment email; a Jinja2 template over the "
        "order's fields (order_id, organizer_email, organizer_name, enrollee_name, "
        "enrollee_email, offering_name, enrolled_at).",
    )
    enrollment_sender: str | None = Field(
        None,
        description="Sender of the enrollment email, `Name <address>` or an address; "
        "SMTP_FROM_NAME and SMTP_FROM_EMAIL when unset.",
    )
    public_base_url: str = Field(
        "http://127.0.0.1:8000", description="Base of the links in emails."
    )

    worker_metrics_address: str = Field(
        "127.0.0.1:9464",
        description="Where the worker serves the Temporal SDK's Prometheus metrics "
        "(`/metrics`); empty: none.",
    )
    server_metrics_address: str = Field(
        "127.0.0.1:9465",
        description="Where the gRPC server serves its Prometheus metrics (`/metrics`): "
        "requests, status codes and latencies per method; empty: none.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level of the server and the worker."
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="`json`: one JSON object a line, for log collectors."
    )

    # Local SMTP sink (make run)
    mail_dir: Path = Field(
        Path("var/mail"), description="Where the local SMTP sink keeps .eml files."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("public_base_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("smtp_from_email")
    @classmethod
    def _sendable_sender(cls, value: str) -> str:
        _check_sender_address(value)
        return value

    @field_validator("enrollment_sender")
    @classmethod
    def _sendable_enrollment_sender(cls, value: str | None) -> str | None:
        if value is not None:
            _check_sender_address(parseaddr(value)[1])
        return value

    @field_validator("enrollment_subject")
    @classmethod
    def _enrollment_subject_parses(cls, value: str) -> str:
        try:
            Environment().parse(value)
        except TemplateSyntaxError as err:
            raise ValueError(f"not a valid Jinja2 template: {err.message}") from None
        return value

    def web_listen_address(self) -> str:
        """WEB_ADDRESS, else the host:port that PUBLIC_BASE_URL names."""
        if self.web_address:
            return self.web_address
        url = urlsplit(self.public_base_url)
        port = url.port or (443 if url.scheme == "https" else 80)
        return f"{url.hostname or '127.0.0.1'}:{port}"

    def enrollment_from(self) -> tuple[str, str]:
        """(display name, address) of the enrollment email's sender."""
        if self.enrollment_sender is None:
            return self.smtp_from_name, self.smtp_from_email
        name, address = parseaddr(self.enrollment_sender)
        return name or self.smtp_from_name, address

    @field_validator("secret_key")
    @classmethod
    def _long_secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _check_secret_key(value.get_secret_value())
        return value

    @field_validator("codec_access_token")
    @classmethod
    def _long_codec_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_KEY_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_KEY_LENGTH} random characters")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.smtp_tls and self.smtp_starttls:
            raise ValueError("SMTP_TLS and SMTP_STARTTLS exclude each other")
        if (self.grpc_tls_cert_file is None) != (self.grpc_tls_key_file is None):
            raise ValueError("GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE go together")
        if (self.temporal_tls_cert_file is None) != (self.temporal_tls_key_file is None):
            raise ValueError("TEMPORAL_TLS_CERT_FILE and TEMPORAL_TLS_KEY_FILE go together")
        if (self.grpc_client_cert_file is None) != (self.grpc_client_key_file is None):
            raise ValueError("GRPC_CLIENT_CERT_FILE and GRPC_CLIENT_KEY_FILE go together")
        if self.grpc_tls_client_ca_file is not None and self.grpc_tls_cert_file is None:
            raise ValueError("GRPC_TLS_CLIENT_CA_FILE needs the server's own GRPC_TLS_CERT_FILE")
        names = [c.name for c in self.grpc_clients]
        if len(names) != len(set(names)):
            raise ValueError("GRPC_CLIENTS names a client twice")
        if self.password_max_length < self.password_min_length:
            raise ValueError("PASSWORD_MAX_LENGTH is below PASSWORD_MIN_LENGTH")
        if self.codec_jwks_url and not (self.codec_jwt_issuer and self.codec_jwt_audience):
            raise ValueError("CODEC_JWKS_URL needs CODEC_JWT_ISSUER and CODEC_JWT_AUDIENCE")
        return self

    def resolved_secret_key(self) -> bytes:
        """SECRET_KEY, or the key kept in SECRET_KEY_FILE, created on first use."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        key = self._secret_file(self.secret_key_file, lambda: secrets.token_urlsafe(32))
        return _check_secret_key(key).encode()

    def resolved_payload_keys(self) -> PayloadKeys:
        """PAYLOAD_KEYS, or the keys kept in PAYLOAD_KEYS_FILE, created on first use."""
        if self.payload_keys is not None:
            return PayloadKeys.parse(self.payload_keys.get_secret_value())
        return PayloadKeys.parse(
            self._secret_file(
                self.payload_keys_file,
                lambda: PayloadKeys.generate_entry(f"local-{secrets.token_hex(4)}") + "\n",
            )
        )

    def local_client_token(self) -> str | None:
        """For the server: outside production, with GRPC_CLIENTS empty, the token of the one
        local client (GRPC_LOCAL_TOKEN_FILE, created on first use); else None."""
        if self.environment == "production" or self.grpc_clients:
            return None
        return self._secret_file(self.grpc_local_token_file, lambda: secrets.token_urlsafe(32))

    def client_token(self) -> str | None:
        """For our clients: GRPC_TOKEN, else the local client's token if the server made one."""
        if self.grpc_token is not None:
            return self.grpc_token.get_secret_value()
        if self.environment != "production" and self.grpc_local_token_file.exists():
            return self.grpc_local_token_file.read_text().strip() or None
        return None

    def missing_production_secrets(self) -> list[str]:
        """The secrets production needs but does not have (it never generates one)."""
        if self.environment != "production":
            return []
        missing = []
        if self.secret_key is None and not self.secret_key_file.exists():
            missing.append("SECRET_KEY (or an existing SECRET_KEY_FILE)")
        if self.payload_keys is None and not self.payload_keys_file.exists():
            missing.append("PAYLOAD_KEYS (or an existing PAYLOAD_KEYS_FILE)")
        return missing

    def _secret_file(self, path: Path, generate: Callable[[], str]) -> str:
        if self.environment == "production" and not path.exists():
            raise RuntimeError(f"{path} does not exist, and production never generates secrets")
        return _read_or_create_secret_file(path, generate)


def _check_sender_address(value: str) -> None:
    # Checked at start: a sender no relay accepts would fail every email as if the
    # recipients were at fault.
    local, at, domain = value.rpartition("@")
    if not (local and at and domain) or not local.isascii():
        raise ValueError("must be an address with an ASCII mailbox name, like no-reply@x.org")
    try:
        idna.encode(domain, uts46=True)
    except idna.IDNAError as err:
        raise ValueError(f"the domain has no IDNA form: {err}") from None


def _check_secret_key(key: str) -> str:
    # Registration ids carry an HMAC under this key: a short or guessable key could be
    # recovered offline from them and verification links forged with it.
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise ValueError(
            f"the secret key must be at least {MIN_SECRET_KEY_LENGTH} random characters "
            '(python -c "import secrets; print(secrets.token_urlsafe(32))")'
        )
    return key


def _read_or_create_secret_file(path: Path, generate: Callable[[], str]) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(generate())
        try:
            # link() never replaces: when several processes start at once, the first key
            # written wins and every process reads that one, never a half-written file.
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    content = path.read_text().strip()
    if not content:
        raise RuntimeError(f"secret file {path} is empty")
    return content


def split_address(address: str) -> tuple[str, int]:
    """`host:port` → (host, port); an empty host means 127.0.0.1."""
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


def is_loopback(host: str) -> bool:
    """Whether `host` (a name, an address, an IPv6 address in brackets) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_settings(*, needs_secrets: bool = True) -> Settings:
    """Settings for a process entry point: a configuration error ends it with a clear message.
    With `needs_secrets` the secrets are checked (and, outside production, created) up front."""
    try:
        settings = Settings()
    except ValidationError as err:
        problems = "\n".join(
            f"  {'.'.join(str(part) for part in e['loc']).upper() or 'settings'}: {e['msg']}"
            for e in err.errors()
        )
        raise SystemExit(f"invalid configuration (environment or .env):\n{problems}") from None
    if not needs_secrets:
        return settings
    if missing := settings.missing_production_secrets():
        raise SystemExit(
            "ENVIRONMENT=production needs secrets that are not configured: " + ", ".join(missing)
        )
    try:
        settings.resolved_secret_key()
        settings.resolved_payload_keys()
    except (ValueError, RuntimeError) as err:
        raise SystemExit(f"invalid secrets: {err}") from None
    return settings
