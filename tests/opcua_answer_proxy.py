"""A TCP proxy in front of an OPC UA server (security None) that takes away the server's
answer to one kind of request, after the server has acted on it.

``answer="error"``: the client gets an ERR message (BadTcpInternalError) in place of the
answer, then the connection closes, as when a server's channel fails after it processed
a request (asyncua then fails every pending request with that status).
``answer="fault"``: the client gets a ServiceFault (BadUserAccessDenied) for that very
request instead of the real answer: the server's word on it.
Everything else passes unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from typing import Literal

from asyncua import ua
from asyncua.ua.ua_binary import nodeid_to_binary, struct_to_binary

#: The request types' binary encoding ids (four-byte NodeIds, as on the wire).
WRITE_REQUEST = b"\x01\x00" + struct.pack("<H", ua.ObjectIds.WriteRequest_Encoding_DefaultBinary)
CALL_REQUEST = b"\x01\x00" + struct.pack("<H", ua.ObjectIds.CallRequest_Encoding_DefaultBinary)
#: The status of the ERR message and of the ServiceFault.
CHANNEL_ERROR = ua.StatusCodes.BadTcpInternalError
FAULT = ua.StatusCodes.BadUserAccessDenied


def _service_fault() -> bytes:
    header = ua.ResponseHeader(ServiceResult=ua.StatusCode(FAULT))
    encoding = ua.FourByteNodeId(ua.ObjectIds.ServiceFault_Encoding_DefaultBinary)
    return nodeid_to_binary(encoding) + struct_to_binary(header)


class AnswerProxy:
    """See the module docstring; ``port`` is where clients connect."""

    def __init__(
        self, upstream_port: int, request: bytes, answer: Literal["error", "fault"]
    ) -> None:
        self.upstream_port = upstream_port
        self.request = request
        self.answer = answer
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> AnswerProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        server_in, server_out = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers += [client_out, server_out]
        chosen: set[bytes] = set()  # request ids of the chosen kind of request

        async def chunk(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
            header = await reader.readexactly(8)
            body = await reader.readexactly(struct.unpack("<I", header[4:8])[0] - 8)
            return header, body

        async def upstream() -> None:
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                while True:
                    header, body = await chunk(client_in)
                    # MSG: channel id, token id, sequence number, request id, type id
                    if header[:3] == b"MSG" and body[16:20] == self.request:
                        chosen.add(body[12:16])
                    server_out.write(header + body)

        async def downstream() -> None:
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                while True:
                    header, body = await chunk(server_in)
                    if header[:3] == b"MSG" and body[12:16] in chosen:
                        if self.answer == "fault":
                            body = body[:16] + _service_fault()
                            header = b"MSGF" + struct.pack("<I", 8 + len(body))
                        else:
                            reason = b"the channel failed"
                            error = struct.pack("<Ii", CHANNEL_ERROR, len(reason)) + reason
                            client_out.write(b"ERRF" + struct.pack("<I", 8 + len(error)) + error)
                            await client_out.drain()
                            client_out.close()
                            server_out.close()
                            return
                    client_out.write(header + body)

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        self._tasks.update(tasks)
        await asyncio.gather(*tasks)


def port_of(endpoint: str) -> int:
    """The port of an ``opc.tcp://host:port[/path]`` endpoint."""
    return int(endpoint.rsplit(":", 1)[1].split("/")[0])
