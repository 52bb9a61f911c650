"""Certificates for mutual TLS: a private CA and the certificates it signs.

    python -m registration.devtools.certificates DIR

writes into DIR (created, mode 0700; keys 0600), for the production-shaped stack of
docker-compose.yml and for tests:

    ca.pem                 the CA every party trusts (its key, ca.key, signs the others)
    temporal.pem/.key      the Temporal server's certificate for --hosts (frontend, and its
                           services among themselves: server and client)
    registration.pem/.key  the client certificate of our processes (worker, gRPC server)
    ui.pem/.key            the client certificate of the Temporal web UI
    server.pem/.key        the gRPC server's certificate
    web.pem/.key           the client certificate of the web pages (a caller of GRPC_CLIENTS)
    probe.pem/.key         the client certificate of the gRPC server's health probe

A deployment with a CA of its own issues these from it instead. Nothing here is used by the
service itself: it only reads the files the settings name.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=825)  # the longest validity browsers accept for a leaf


@dataclass(frozen=True)
class Issued:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(common_name: str = "registration private CA") -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Issued(certificate, key)


def issue(
    ca: Issued,
    common_name: str,
    *,
    hosts: Sequence[str] = (),
    client: bool = False,
    server: bool | None = None,
) -> Issued:
    """A leaf certificate signed by `ca`: a server's for `hosts` (DNS names or IP addresses),
    or, with `client`, a client's whose identity is `common_name` (both, with `server` too)."""
    server = not client if server is None else server
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH] * server
                + [ExtendedKeyUsageOID.CLIENT_AUTH] * client
            ),
            critical=False,
        )
    )
    if hosts:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(host) for host in hosts]), critical=False
        )
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def write(issued: Issued, folder: Path, stem: str) -> None:
    (folder / f"{stem}.pem").write_bytes(issued.certificate_pem)
    key_file = folder / f"{stem}.key"
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(issued.key_pem)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m registration.devtools.certificates",
        description="Write a private CA and the certificates of the production-shaped stack.",
    )
    parser.add_argument("folder", type=Path, help="where to write them (created)")
    parser.add_argument(
        "--temporal-hosts",
        default="temporal,localhost,127.0.0.1",
        help="names and addresses of the Temporal frontend (comma-separated)",
    )
    parser.add_argument(
        "--server-hosts",
        default="server,localhost,127.0.0.1",
        help="names and addresses of the gRPC server (comma-separated)",
    )
    args = parser.parse_args(argv)
    folder: Path = args.folder
    if (folder / "ca.pem").exists():
        raise SystemExit(f"{folder} holds certificates already: choose another folder")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca = make_ca()
    write(ca, folder, "ca")
    write(
        issue(ca, "temporal", hosts=args.temporal_hosts.split(","), client=True, server=True),
        folder,
        "temporal",
    )
    write(issue(ca, "registration", client=True), folder, "registration")
    write(issue(ca, "temporal-ui", client=True), folder, "ui")
    write(issue(ca, "server", hosts=args.server_hosts.split(",")), folder, "server")
    write(issue(ca, "web", client=True), folder, "web")
    write(issue(ca, "probe", client=True), folder, "probe")
    print(f"wrote a CA and the stack's certificates to {folder}")


if __name__ == "__main__":
    main()
