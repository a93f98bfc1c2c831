"""gRPC entrypoint of ingest: authenticate -> parse -> accept -> answer.

Requests arrive as raw bytes and are parsed here, so a malformed protobuf gets a precise
INVALID_ARGUMENT instead of grpc's generic deserialization failure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc
from google.protobuf.message import DecodeError

from command_side.ingest.accept import BatchAcceptor
from contracts.argus.ingest.v1 import ingest_pb2
from core.auth import Authenticator
from core.errors import ArgusError, InvalidArgument
from core.tenancy import tenant_from_metadata
from core.transport_errors import grpc_code, public_message

log = logging.getLogger(__name__)

SERVICE_NAME = ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name


class IngestService:
    def __init__(self, acceptor: BatchAcceptor, authenticator: Authenticator) -> None:
        self._acceptor = acceptor
        self._auth = authenticator

    async def _tenant(self, context: grpc.aio.ServicerContext) -> str:
        try:
            return tenant_from_metadata(self._auth, context.invocation_metadata())
        except ArgusError as exc:
            await context.abort(grpc_code(exc), public_message(exc))
            raise  # abort raises; this keeps type checkers honest

    async def push_batch(self, raw: bytes, context: grpc.aio.ServicerContext) -> ingest_pb2.PushBatchResponse:
        tenant = await self._tenant(context)
        try:
            request = ingest_pb2.PushBatchRequest.FromString(raw)
        except DecodeError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed protobuf PushBatchRequest: {exc}")
            raise
        result = await self._accept(tenant, request, context)
        return ingest_pb2.PushBatchResponse(result=result)

    async def _accept(
        self,
        tenant: str,
        request: ingest_pb2.PushBatchRequest | ingest_pb2.PushRequest,
        context: grpc.aio.ServicerContext,
    ) -> ingest_pb2.BatchResult:
        try:
            return await self._acceptor.accept(tenant, request.batch)
        except ArgusError as exc:
            log.warning("accept batch %s of tenant %s failed: %s", request.batch.batch_id, tenant, exc)
            await context.abort(grpc_code(exc), f"batch {request.batch.batch_id}: {public_message(exc)}")
            raise

    async def push(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ingest_pb2.PushResponse]:
        tenant = await self._tenant(context)
        results: asyncio.Queue[ingest_pb2.PushResponse | BaseException | None] = asyncio.Queue()
        pending: set[asyncio.Task[None]] = set()

        async def handle(request: ingest_pb2.PushRequest) -> None:
            try:
                result = await self._acceptor.accept(tenant, request.batch)
                await results.put(ingest_pb2.PushResponse(result=result))
            except BaseException as exc:  # surfaced to the stream below
                await results.put(exc)

        async def read_all() -> None:
            number = 0
            try:
                async for raw in requests:
                    number += 1
                    try:
                        request = ingest_pb2.PushRequest.FromString(raw)
                    except DecodeError as exc:
                        await results.put(
                            InvalidArgument(f"malformed protobuf PushRequest (message {number} of the stream): {exc}")
                        )
                        return
                    task = asyncio.create_task(handle(request))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                await asyncio.gather(*pending)
            finally:
                await results.put(None)

        reader = asyncio.create_task(read_all())
        try:
            while (item := await results.get()) is not None:
                if isinstance(item, BaseException):
                    await context.abort(grpc_code(item), public_message(item))
                yield item  # type: ignore[misc]
        finally:
            reader.cancel()
            for task in list(pending):
                task.cancel()


def add_to_server(server: grpc.aio.Server, service: IngestService) -> None:
    handlers = {
        "PushBatch": grpc.unary_unary_rpc_method_handler(
            service.push_batch,
            request_deserializer=None,
            response_serializer=ingest_pb2.PushBatchResponse.SerializeToString,
        ),
        "Push": grpc.stream_stream_rpc_method_handler(
            service.push, request_deserializer=None, response_serializer=ingest_pb2.PushResponse.SerializeToString
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
