"""`triolet.client`: a small Python client of Triolet's WebSocket protocol.

For tests (Triolet's and your own), benchmarks and scripts::

    import triolet.client

    async with triolet.client.connect("ws://127.0.0.1:8000/ws") as chat:
        print(await chat.ask("hello"))
"""

from ._client import (
    DEFAULT_BUFFER,
    DEFAULT_TIMEOUT,
    Client,
    ClientClosed,
    Event,
    ServerError,
    connect,
)

__all__ = [
    "DEFAULT_BUFFER",
    "DEFAULT_TIMEOUT",
    "Client",
    "ClientClosed",
    "Event",
    "ServerError",
    "connect",
]
