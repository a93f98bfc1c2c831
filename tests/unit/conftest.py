"""Fixtures shared by unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest

from contracts.argus.ingest.v1 import ingest_pb2_grpc


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[ingest_pb2_grpc.IngestServiceServicer], Awaitable[str]]]:
    """Start an in-process gRPC server for a fake IngestService; returns its address.
    Every server started is stopped after the test."""
    servers: list[grpc.aio.Server] = []

    async def start(fake: ingest_pb2_grpc.IngestServiceServicer) -> str:
        server = grpc.aio.server()
        ingest_pb2_grpc.add_IngestServiceServicer_to_server(fake, server)  # type: ignore[no-untyped-call]
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield start
    for server in servers:
        await server.stop(grace=None)
