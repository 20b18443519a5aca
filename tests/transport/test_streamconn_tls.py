"""Response streams (service/transport/streamconn.py) over real TLS: a local server on 127.0.0.1 with a certificate
from a throwaway CA made here, on asyncio's loop and on uvloop (the gateway's; its TLS is its own code).

Production streams are https to runtime.sagemaker.<region>.amazonaws.com; these check that a stream arrives whole
across TLS records, that the TLS connection is kept alive, that a certificate the client must not trust is refused
before a signed request leaves it, and that a cut is a retryable stream error as on plain TCP.

The certificates are made with `cryptography`, which the test extra already installs (moto[server] depends on
it): no new dependency for a few certificates.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from service.errors import UpstreamStreamError, UpstreamTimeout, UpstreamUnavailable
from service.transport.base import Target
from service.transport.sagemaker import SageMakerTransport
from service.transport.signing import Signer
from tests.transport.conftest import ACCESS_KEY, SECRET_KEY, SESSION_TOKEN
from tests.transport.rawserver import OK_HEAD, STREAM_PAYLOAD, RawServer, chunked, read_all, send_in
from tests.transport.upstream import payload_part

pytestmark = pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])

DEADLINE_S = 10.0  # bounds every exchange: a hang fails the test instead of stalling the suite
LOCALHOST = ("localhost", "127.0.0.1")


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))


@dataclass(frozen=True)
class Authority:
    """A throwaway CA (EC keys: made in milliseconds) and the server certificates it signs."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def make(cls, name: str) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        usage = x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                              key_encipherment=False, data_encipherment=False, key_agreement=False,
                              encipher_only=False, decipher_only=False)
        cert = (_builder(name, _name(name), key)
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(usage, critical=True)
                .sign(key, hashes.SHA256()))
        return cls(key, cert)

    def trusted_by(self) -> ssl.SSLContext:
        """A client context that trusts this CA only (and checks host names, as the default context does)."""
        return ssl.create_default_context(cadata=self.cert.public_bytes(Encoding.PEM).decode())

    def server_context(self, directory: Path, *names: str) -> ssl.SSLContext:
        """A server context whose certificate, signed by this CA, names `names` (DNS names or IP addresses)."""
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(n)) if n[0].isdigit() else x509.DNSName(n)
                                        for n in names]
        cert = (_builder(names[0], self.cert.subject, key)
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                               critical=False)
                .sign(self.key, hashes.SHA256()))
        path = directory / f"{names[0]}.pem"  # load_cert_chain reads files only
        path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
                         + cert.public_bytes(Encoding.PEM))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(path)
        return context


@pytest.fixture(scope="module")
def authority() -> Authority:
    return Authority.make("jumpgate test CA")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("certs")


Serve = Callable[[ssl.SSLContext | None], Awaitable[RawServer]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Starts RawServers at https://localhost:PORT speaking TLS with a given context (None: not speaking TLS at
    all); closed at teardown."""
    servers: list[asyncio.Server] = []

    async def start(context: ssl.SSLContext | None) -> RawServer:
        raw = RawServer()
        server = await asyncio.start_server(raw.handle, "127.0.0.1", 0, ssl=context)
        servers.append(server)
        raw.url = f"https://localhost:{server.sockets[0].getsockname()[1]}"
        return raw

    yield start
    for server in servers:
        server.close()


@pytest.fixture
async def server(serve: Serve, authority: Authority, certs: Path) -> RawServer:
    return await serve(authority.server_context(certs, *LOCALHOST))


async def _client_read(server: RawServer, signer: Signer, trust: ssl.SSLContext | None,
                       target: Target | None = None) -> list[bytes]:
    """One stream read whole by a fresh transport that trusts `trust` (None: the system's trust store)."""
    client = SageMakerTransport(server.url, signer, stream_ssl_context=trust)
    try:
        return await asyncio.wait_for(read_all(client, target), DEADLINE_S)
    finally:
        await client.aclose()


async def test_parts_split_across_tls_records_arrive_whole(server: RawServer, authority: Authority,
                                                           signer: Signer) -> None:
    parts = [b'data: {"token": {"text": "He', b'llo"}}\n\n', "é".encode(), bytes(range(256)) * 160]  # 40 KB: 3 records
    body = OK_HEAD + chunked(*(payload_part(p) for p in parts))
    cut = 7 * 40  # the head and the first frames in 7-byte writes (a TLS record each), the rest in one write
    server.scripts.append(send_in(*(body[i:i + 7] for i in range(0, cut, 7)), body[cut:]))
    got = await _client_read(server, signer, authority.trusted_by())
    assert b"".join(got) == b"".join(parts)
    assert server.connections == 1 and len(server.requests) == 1


async def test_parts_pushed_over_tls_arrive_whole(server: RawServer, authority: Authority, signer: Signer) -> None:
    parts = [b'data: {"token": {"text": "He', b'llo"}}\n\n', "é".encode(), bytes(range(256)) * 160]
    body = OK_HEAD + chunked(*(payload_part(p) for p in parts))
    server.scripts.append(send_in(*(body[i:i + 7] for i in range(0, 280, 7)), body[280:]))
    client = SageMakerTransport(server.url, signer, stream_ssl_context=authority.trusted_by())
    got: list[bytes] = []
    try:
        stream = client.invoke_stream(Target("ep"), STREAM_PAYLOAD)
        assert await asyncio.wait_for(stream.deliver(lambda part: got.append(part) is None), DEADLINE_S) is False
    finally:
        await client.aclose()
    assert b"".join(got) == b"".join(parts)


async def test_tls_connection_is_kept_alive(server: RawServer, authority: Authority, signer: Signer) -> None:
    server.scripts += [send_in(OK_HEAD + chunked(payload_part(b"x"))), send_in(OK_HEAD + chunked(payload_part(b"y")))]
    client = SageMakerTransport(server.url, signer, stream_ssl_context=authority.trusted_by())
    try:
        assert await asyncio.wait_for(read_all(client), DEADLINE_S) == [b"x"]
        assert await asyncio.wait_for(read_all(client), DEADLINE_S) == [b"y"]
    finally:
        await client.aclose()
    assert server.connections == 1 and len(server.requests) == 2


async def test_a_large_unread_body_pauses_the_tls_socket_and_arrives_whole(server: RawServer, authority: Authority,
                                                                           signer: Signer) -> None:
    parts = [bytes([65 + i % 26]) * 30_000 for i in range(20)]  # ~600 KB: well over streamconn's high-water mark
    server.scripts.append(send_in(OK_HEAD + chunked(*(payload_part(p) for p in parts))))
    client = SageMakerTransport(server.url, signer, stream_ssl_context=authority.trusted_by())
    stream = client.invoke_stream(Target("ep"), STREAM_PAYLOAD)
    try:
        got = [await asyncio.wait_for(anext(stream), DEADLINE_S)]
        await asyncio.sleep(0.05)  # the consumer dawdles so the TLS transport is paused and resumed (not a verdict)
        got += await asyncio.wait_for(_rest(stream), DEADLINE_S)
    finally:
        await stream.aclose()
        await client.aclose()
    assert b"".join(got) == b"".join(parts)


async def _rest(stream: AsyncIterator[bytes]) -> list[bytes]:
    return [part async for part in stream]


def _assert_refused_cleanly(exc: UpstreamUnavailable, server: RawServer, why: str) -> None:
    """Refused during the handshake: nothing signed was sent, and the message says why without paths or keys."""
    message = exc.message
    assert "could not reach the SageMaker runtime for endpoint 'ep'" in message
    assert "certificate verify failed" in message and why in message
    assert "TLS certificate is not trusted" in message  # what to check
    assert server.requests == [] and server.connections == 0
    assert not re.search(r"\w/\w", message), message  # no file path (CA bundle, certificate file)
    assert not any(secret in message for secret in (ACCESS_KEY, SECRET_KEY, SESSION_TOKEN))


@pytest.mark.parametrize("trust", ["system", "another CA"])
async def test_an_untrusted_certificate_is_refused(server: RawServer, signer: Signer, trust: str) -> None:
    context = None if trust == "system" else Authority.make("another CA").trusted_by()
    server.scripts.append(send_in(OK_HEAD + chunked(payload_part(b"x"))))  # never reached
    with pytest.raises(UpstreamUnavailable) as info:
        await _client_read(server, signer, context)
    _assert_refused_cleanly(info.value, server, "unable to get local issuer certificate")
    assert info.value.retryable  # as any unreachable runtime: the next endpoint in line may be reachable


async def test_a_certificate_for_another_host_is_refused(serve: Serve, authority: Authority, certs: Path,
                                                         signer: Signer) -> None:
    server = await serve(authority.server_context(certs, "runtime.sagemaker.example", "10.9.8.7"))
    server.scripts.append(send_in(OK_HEAD + chunked(payload_part(b"x"))))  # never reached
    with pytest.raises(UpstreamUnavailable) as info:
        await _client_read(server, signer, authority.trusted_by())
    _assert_refused_cleanly(info.value, server, "Hostname mismatch")


async def test_a_server_that_never_answers_the_handshake_is_a_timeout(serve: Serve, authority: Authority,
                                                                     signer: Signer) -> None:
    server = await serve(None)  # accepts the TCP connection, then waits for an HTTP head that never comes
    server.scripts.append(send_in())  # never reached
    with pytest.raises(UpstreamTimeout, match=r"'ep' did not answer within 0\.3s"):
        await _client_read(server, signer, authority.trusted_by(), Target("ep", timeout_s=0.3))
    assert server.connections == 1 and server.requests == []


FRAME = payload_part(b"xyz")
CUT_BODY = OK_HEAD + b"%x\r\n%s" % (len(FRAME), FRAME[:10])  # the head, then a chunk cut inside its frame


async def _cut_abruptly(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(CUT_BODY)
    await writer.drain()
    writer.transport.abort()  # no TLS close_notify: the TCP connection just ends


@pytest.mark.parametrize("close", ["close_notify", "abort"])
async def test_a_tls_connection_cut_mid_body_is_a_retryable_stream_error(server: RawServer, authority: Authority,
                                                                         signer: Signer, close: str) -> None:
    server.scripts.append(send_in(CUT_BODY, close=True) if close == "close_notify" else _cut_abruptly)
    with pytest.raises(UpstreamStreamError, match="broke mid-stream") as info:
        await _client_read(server, signer, authority.trusted_by())
    assert info.value.retryable
