"""TLS for Argus listeners and clients: certificate files in, gRPC credentials and SSL contexts out.

A server has a certificate chain and key (PEM) and, for mutual TLS, the CA whose certificates
its clients must present. A client has the CA it trusts the server by (empty: the system's
trust store) and, for mutual TLS, its own certificate and key. Files are read when the
credentials are made, so a missing or unreadable file is an error naming it, at start.

`check_bind` is the rule that keeps a listener off the network without TLS: a non-loopback
address needs TLS unless the operator opted out with `allow_insecure_bind`.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

from core.errors import InvalidArgument

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


def _read(path: str, what: str, parameter: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"cannot read the {what} {path}: {exc.strerror}", parameter=parameter) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerTls:
    """What a TLS listener presents (`cert_file`, `key_file`) and, when `client_ca_file` is
    set, the CA every client certificate must chain to (mutual TLS: no certificate, no call)."""

    cert_file: str
    key_file: str
    client_ca_file: str = ""

    @classmethod
    def from_files(cls, *, cert_file: str, key_file: str, client_ca_file: str = "") -> ServerTls | None:
        """The server TLS of these settings; None when TLS is off (no certificate given)."""
        if not cert_file and not key_file:
            if client_ca_file:
                raise InvalidArgument(
                    "tls_client_ca_file needs tls_cert_file and tls_key_file (mutual TLS is TLS first)",
                    parameter="tls_client_ca_file",
                )
            return None
        if not cert_file or not key_file:
            missing = "tls_key_file" if cert_file else "tls_cert_file"
            raise InvalidArgument(
                f"TLS needs both tls_cert_file and tls_key_file; {missing} is not set", parameter=missing
            )
        return cls(cert_file=cert_file, key_file=key_file, client_ca_file=client_ca_file)

    def grpc_credentials(self) -> grpc.ServerCredentials:
        cert = _read(self.cert_file, "TLS certificate", "tls_cert_file")
        key = _read(self.key_file, "TLS key", "tls_key_file")
        ca = _read(self.client_ca_file, "TLS client CA", "tls_client_ca_file") if self.client_ca_file else None
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
            if self.client_ca_file:
                context.load_verify_locations(cafile=self.client_ca_file)
                context.verify_mode = ssl.CERT_REQUIRED
        except (OSError, ssl.SSLError) as exc:
            raise InvalidArgument(f"cannot load TLS files {self._files()}: {exc}", parameter="tls_cert_file") from None
        return context

    def _files(self) -> str:
        return ", ".join(filter(None, (self.cert_file, self.key_file, self.client_ca_file)))


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientTls:
    """How a client checks the server (`ca_file`; empty: the system's trust store) and, for
    mutual TLS, the certificate it presents (`cert_file` and `key_file`)."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    @classmethod
    def from_files(
        cls, *, enabled: bool = False, ca_file: str = "", cert_file: str = "", key_file: str = ""
    ) -> ClientTls | None:
        """TLS when `enabled` or any file is given, else None (plaintext)."""
        if bool(cert_file) != bool(key_file):
            raise InvalidArgument(
                "a client certificate needs both its certificate and its key file",
                parameter="tls_cert_file" if not cert_file else "tls_key_file",
            )
        if not (enabled or ca_file or cert_file):
            return None
        return cls(ca_file=ca_file, cert_file=cert_file, key_file=key_file)

    def grpc_credentials(self) -> grpc.ChannelCredentials:
        ca = _read(self.ca_file, "TLS CA", "tls_ca_file") if self.ca_file else None
        key = _read(self.key_file, "TLS client key", "tls_key_file") if self.key_file else None
        cert = _read(self.cert_file, "TLS client certificate", "tls_cert_file") if self.cert_file else None
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)

    def ssl_context(self) -> ssl.SSLContext:
        try:
            context = ssl.create_default_context(cafile=self.ca_file or None)
            if self.cert_file:
                context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise InvalidArgument(f"cannot load client TLS files: {exc}", parameter="tls_ca_file") from None
        return context


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve to anything


def check_bind(addr: str, *, tls: ServerTls | None, allow_insecure_bind: bool, setting: str) -> None:
    """Refuse to listen on a non-loopback `addr` without TLS (unless `allow_insecure_bind`):
    API keys and tenants' data would cross the network in clear text."""
    if tls is not None or allow_insecure_bind:
        return
    host = addr.rpartition(":")[0]
    if host and is_loopback(host):
        return
    raise InvalidArgument(
        f"{setting} = {addr} listens beyond this machine without TLS: API keys and data would travel "
        "in clear text. Give a certificate (tls_cert_file and tls_key_file; --tls-cert/--tls-key; "
        "ARGUS_TLS_CERT_FILE/ARGUS_TLS_KEY_FILE), bind 127.0.0.1, or set allow_insecure_bind = true "
        "(--allow-insecure-bind; ARGUS_ALLOW_INSECURE_BIND=true) when a proxy in front terminates TLS",
        parameter=setting,
    )
