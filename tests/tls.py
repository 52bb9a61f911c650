"""TLS for tests: certificates made in the test, written as the settings read them, and a
TLS-terminating proxy that puts mutual TLS in front of a plain server (the Temporal dev
server speaks no TLS of its own)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from registration.devtools.certificates import Issued, issue, make_ca, write


@dataclass(frozen=True)
class Pki:
    """A CA, a server certificate for 127.0.0.1 and localhost, and client certificates, each
    as files in `folder` (`<name>.pem`, `<name>.key`, and `ca.pem`)."""

    folder: Path
    ca: Issued

    @classmethod
    def make(cls, folder: Path, *, server: str = "server", clients: tuple[str, ...] = ()) -> Pki:
        folder.mkdir(parents=True, exist_ok=True)
        ca = make_ca()
        write(ca, folder, "ca")
        write(issue(ca, server, hosts=["127.0.0.1", "localhost"]), folder, server)
        for client in clients:
            write(issue(ca, client, client=True), folder, client)
        return cls(folder, ca)

    def pem(self, name: str) -> Path:
        return self.folder / f"{name}.pem"

    def key(self, name: str) -> Path:
        return self.folder / f"{name}.key"


@contextlib.asynccontextmanager
async def mutual_tls_proxy(
    pki: Pki, server: str, target: tuple[str, int], *, client_ca: Path | None = None
) -> AsyncIterator[int]:
    """A port on 127.0.0.1 that presents `pki`'s certificate `server`, demands a client
    certificate of `client_ca` (else of `pki`'s CA), and passes the bytes on to `target` in
    the clear."""
    context = ssl.create_default_context(
        ssl.Purpose.CLIENT_AUTH, cafile=str(client_ca or pki.pem("ca"))
    )
    context.load_cert_chain(pki.pem(server), pki.key(server))
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*target)
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    proxy = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    async with proxy:
        yield proxy.sockets[0].getsockname()[1]
