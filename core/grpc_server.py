"""What every Argus gRPC server has: size limits, health checking and reflection."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from core.tls import ServerTls


def make_server(*, max_message_bytes: int) -> grpc.aio.Server:
    return grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.so_reuseport", 0),
        ]
    )


async def add_health_and_reflection(server: grpc.aio.Server, services: Sequence[str]) -> health.aio.HealthServicer:
    """Register grpc.health.v1 (every service SERVING) and server reflection."""
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    for name in ("", *services):
        await servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection((*services, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    return servicer


def bind(server: grpc.aio.Server, addr: str, tls: ServerTls | None = None) -> int:
    """Listen on `addr` (host:port, port 0 = any free port), over TLS when `tls` is given;
    return the bound port."""
    credentials = tls.grpc_credentials() if tls is not None else None
    try:
        port = server.add_secure_port(addr, credentials) if credentials else server.add_insecure_port(addr)
    except RuntimeError as exc:  # grpc reports a taken port this way
        raise OSError(f"cannot listen on {addr} (in use, or not an address of this host)") from exc
    if port == 0:
        raise OSError(f"cannot listen on {addr} (in use, or not an address of this host)")
    return int(port)
