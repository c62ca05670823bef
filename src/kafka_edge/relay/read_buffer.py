"""The read buffer every socket of the relay reads into (``ProxyConnection`` and its upstream side,
relay/connection.py), and the protocol base class that hands it to the event loop."""

from __future__ import annotations

import asyncio

READ_SIZE = 256 << 10


class _ReadBuffer:
    """The one read buffer of this process's event loop, shared by every socket.

    Sockets are read with ``asyncio.BufferedProtocol``: the kernel copies straight into this
    buffer and the frame streams forward views of it, so a read costs no allocation and no
    copy into a fresh ``bytes`` (the event loop would otherwise make one per read). That is
    safe because a read is handled to completion before the next one starts, and a view handed
    to a transport that could not send it at once stays referenced by that transport's queue:
    then ``renew`` gives later reads a new buffer and the old one lives until the queue drains.
    """

    __slots__ = ("buf", "view")

    def __init__(self) -> None:
        self.buf = bytearray(READ_SIZE)
        self.view = memoryview(self.buf)

    def renew(self) -> None:
        self.buf = bytearray(READ_SIZE)
        self.view = memoryview(self.buf)


# the one instance: ``renew`` replaces its attributes, never the object, so importing it by name
# is safe
READ_BUFFER = _ReadBuffer()


class SharedBufferReader(asyncio.BufferedProtocol):
    """Both sockets of every connection read into ``READ_BUFFER``."""

    __slots__ = ()

    def get_buffer(self, sizehint: int) -> memoryview:
        return READ_BUFFER.view  # a view: asyncio's TLS layer writes records into slices of it
