"""A tiny gRPC-web client for tests and benchmarks: frames encoded by hand over aiohttp, so the
tests check the wire protocol itself (query_side/grpc_web.py), not a library's view of it."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import unquote

import aiohttp
from google.protobuf.message import Message

M = TypeVar("M", bound=Message)
_HEADER = struct.Struct(">BI")


@dataclass
class WebCall:
    """What one call answered: HTTP status and headers, the messages' bytes, the trailer."""

    http_status: int
    headers: Mapping[str, str]
    messages: list[bytes] = field(default_factory=list)
    trailer: dict[str, str] = field(default_factory=dict)

    @property
    def code(self) -> int:
        return int(self.trailer["grpc-status"])

    @property
    def message(self) -> str:
        return unquote(self.trailer.get("grpc-message", ""))

    def decoded(self, cls: type[M]) -> list[M]:
        return [cls.FromString(m) for m in self.messages]


def frame(message: Message | bytes, flag: int = 0) -> bytes:
    payload = message if isinstance(message, bytes) else message.SerializeToString()
    return _HEADER.pack(flag, len(payload)) + payload


def request_headers(
    key: str | None = None, *, timeout: str | None = None, text: bool = False, origin: str | None = None
) -> dict[str, str]:
    headers = {
        "content-type": "application/grpc-web-text" if text else "application/grpc-web+proto",
        "x-grpc-web": "1",
        "accept": "application/grpc-web-text" if text else "application/grpc-web+proto",
    }
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    if timeout is not None:
        headers["grpc-timeout"] = timeout
    if origin is not None:
        headers["origin"] = origin
    return headers


async def frames(response: aiohttp.ClientResponse, *, text: bool = False) -> AsyncIterator[tuple[int, bytes]]:
    """(flag, payload) of each frame as it arrives."""
    buffer = b""
    pending = b""
    async for chunk in response.content.iter_any():
        if text:
            chunk, pending = _b64_prefix(pending + chunk)
        buffer += chunk
        while len(buffer) >= _HEADER.size:
            flag, length = _HEADER.unpack_from(buffer)
            if len(buffer) < _HEADER.size + length:
                break
            yield flag, buffer[_HEADER.size : _HEADER.size + length]
            buffer = buffer[_HEADER.size + length :]


def _b64_prefix(text: bytes) -> tuple[bytes, bytes]:
    """Decode what can be decoded of back-to-back padded base64 blocks; return the rest."""
    out = b""
    while True:
        pad = text.find(b"=")
        if pad < 0:
            end = len(text) - len(text) % 4
        else:
            end = pad
            while text[end : end + 1] == b"=":
                end += 1
            if end % 4:
                break  # the rest of the padding has not arrived
        if end == 0:
            break
        out += base64.b64decode(text[:end])
        text = text[end:]
    return out, text


def parse_trailer(block: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in block.decode().split("\r\n"):
        if line:
            name, _, value = line.partition(":")
            out[name.strip().lower()] = value.strip()
    return out


async def call(
    session: aiohttp.ClientSession,
    url: str,
    request: Message | bytes,
    *,
    headers: Mapping[str, str],
    body: bytes | None = None,
) -> WebCall:
    """One whole call (unary or server streaming), read to its end."""
    text = headers.get("content-type", "").startswith("application/grpc-web-text")
    data = body if body is not None else frame(request)
    if text and body is None:
        data = base64.b64encode(data)
    async with session.post(url, data=data, headers=dict(headers)) as response:
        result = WebCall(http_status=response.status, headers=dict(response.headers))
        if response.status != 200:
            return result
        async for flag, payload in frames(response, text=text):
            if flag & 0x80:
                result.trailer = parse_trailer(payload)
            else:
                result.messages.append(payload)
        return result
