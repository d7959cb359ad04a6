"""The floor: a bare hypercorn raw-ASGI WebSocket echo server on Trio.

    python -m benchmarks._bare --port 9001

No framework, no actors, no protocol: every text frame comes straight back.
What Triolet costs per message is measured against this, in the same run.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http":
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


def run_hypercorn(app: Any, host: str, port: int, name: str) -> None:
    """Serve ``app`` with hypercorn's defaults on Trio, logging only warnings (as ``name``)."""
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger(name)
    logging.getLogger(name).setLevel(logging.WARNING)
    trio.run(serve, app, config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    run_hypercorn(echo_app, args.host, args.port, "bare")


if __name__ == "__main__":
    main()
