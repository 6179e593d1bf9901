"""A connected TCP socket, TLS-wrapped and handshaken if asked, opened without blocking the loop.

paho opens its socket itself, with blocking calls (``socket.create_connection``, a
blocking TLS handshake). :class:`~edge_agent.sinks.mqtt_bridge.MqttConnection` opens
it here instead and hands the connected socket to paho.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from typing import Any


class OpenError(Exception):
    """The socket could not be opened; the message says why.

    Not an :class:`OSError`: a TLS handshake that failed ends the attempt rather than
    moving on to the host's next address, as a refused TCP connection does.
    """


async def open_socket(host: str, port: int, ssl_context: ssl.SSLContext | None) -> socket.socket:
    """A connected, non-blocking socket (TLS-wrapped and handshaken with ``ssl_context``).

    Resolution: an IP literal is used as is. A host name goes through
    ``loop.getaddrinfo``, which asyncio runs in the loop's default executor (the
    stdlib has no non-blocking resolver); that thread belongs to the loop and is
    joined when the loop shuts down. Each address is tried in turn.
    """
    loop = asyncio.get_running_loop()
    targets: list[tuple[int, Any]]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise OpenError(f"cannot resolve: {exc}") from exc
        targets = [(fam, addr) for fam, _, _, _, addr in infos]
    else:
        ip_family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        targets = [(ip_family, (host, port))]
    errors: list[str] = []
    for family, address in targets:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            # Messages are already batched (one per device and poll); Nagle would
            # only delay the last message of a send, and so its PUBACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.sock_connect(sock, address)
            if ssl_context is None:
                return sock
            return await _tls_handshake(sock, host, ssl_context)
        except OSError as exc:
            sock.close()
            errors.append(f"{address[0]}: {exc}")
        except BaseException:
            sock.close()
            raise
    raise OpenError("; ".join(errors or ["no address"]))


async def _tls_handshake(sock: socket.socket, host: str, context: ssl.SSLContext) -> ssl.SSLSocket:
    tls = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
    try:
        while True:
            try:
                tls.do_handshake()
                return tls
            except ssl.SSLWantReadError:
                await _fd_ready(tls.fileno(), write=False)
            except ssl.SSLWantWriteError:
                await _fd_ready(tls.fileno(), write=True)
    except ssl.SSLError as exc:
        tls.close()
        raise OpenError(f"TLS handshake failed: {exc}") from exc
    except BaseException:
        tls.close()
        raise


async def _fd_ready(fd: int, *, write: bool) -> None:
    """Wait until ``fd`` is readable (or writable) once."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    if write:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)
