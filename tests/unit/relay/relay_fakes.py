"""What a ProxyConnection asks of its cluster, as a recorder: the relay tests subclass it with the
dial they need (a local port, a future the test completes, an error)."""

from __future__ import annotations

import asyncio


class FakeCluster:
    name = "t"

    def __init__(self) -> None:
        self.errors: list[str] = []  # on_error kinds, in order

    async def dial(self, node_id: int | None, protocol: asyncio.BaseProtocol
                   ) -> asyncio.Transport:
        raise NotImplementedError

    def map_address(self, node: int, host: str, port: int, broker: bool) -> tuple[str, int]:
        return f"b-{node}.edge", 9098

    def learn(self, entries: object, source: str) -> bool:
        return True

    def on_error(self, kind: str) -> None:
        self.errors.append(kind)

    def on_accept(self, listener: str, *, is_broker: bool) -> None:
        pass

    def on_close(self, listener: str) -> None:
        pass

    def record_requests(self, counts: object, latency: object) -> None:
        pass

    def record_bytes(self, up: int, down: int) -> None:
        pass

    def record_answers(self, **counts: object) -> None:
        pass
