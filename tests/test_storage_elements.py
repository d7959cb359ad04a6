"""Elements a session sends with bytes or a local path are kept in the file store.

A real ``triolet run`` process: its session sends an image as bytes, a text file by path,
a file whose type the store refuses, and an image by URL. ``GET /api/elements/{id}`` serves
the first two at once (a fetch that races their storing waits for it), and again after a
restart of the server; the refused one is stored without bytes, the reason in its metadata;
the URL stays a URL.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
from run_harness import running, write_app

from triolet.client import connect

#: The smallest valid PNG (1x1, transparent).
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)

APP = """
import base64
from pathlib import Path

from triolet import Element, SessionActor

HERE = Path(__file__).parent
PNG = base64.b64decode({png!r})


class Pictures(SessionActor):
    async def on_message(self, message):
        await self.send(
            "here",
            elements=[
                Element(kind="image", name="dot.png", data=PNG),
                Element(kind="file", name="notes.txt", path=str(HERE / "notes.txt")),
                Element(kind="file", name="run.exe", data=b"MZ" + bytes(200)),
                Element(kind="image", name="remote", url="https://example.com/x.png"),
            ],
        )
"""


async def elements_of(client: Any, count: int) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    while len(found) < count:
        event = await client.next_event("element", timeout=10)
        found[event["name"]] = event
    return found


async def test_element_bytes_are_served_from_the_file_store_across_a_restart(
    tmp_path: Path,
) -> None:
    (tmp_path / "notes.txt").write_text("meeting notes\n")
    toml = write_app(tmp_path, APP.format(png=base64.b64encode(PNG).decode()))
    async with running(toml, tmp_path) as server, connect(server.ws) as client:
        await client.send_message("show me")
        elements = await elements_of(client, 4)
        session = client.session_id
        async with httpx.AsyncClient(base_url=server.url) as http:
            # At once: the client has the URL before the bytes are stored.
            dot = await http.get(elements["dot.png"]["url"], params={"session": session})
            assert dot.status_code == 200, dot.text
            assert (dot.content, dot.headers["content-type"]) == (PNG, "image/png")
    assert elements["remote"]["url"] == "https://example.com/x.png"
    with sqlite3.connect(tmp_path / "triolet.sqlite3") as db:
        rows = {
            name: (key, url, json.loads(meta or "{}"))
            for name, key, url, meta in db.execute(
                "SELECT name, storage_key, url, metadata FROM elements"
            )
        }
    assert rows["dot.png"][0] is not None and rows["notes.txt"][0] is not None
    assert rows["remote"][:2] == (None, "https://example.com/x.png")
    refused = rows["run.exe"]
    assert refused[0] is None and "file_error" in refused[2]
    async with running(toml, tmp_path) as server, httpx.AsyncClient(base_url=server.url) as http:
        dot = await http.get(elements["dot.png"]["url"], params={"session": session})
        assert (dot.status_code, dot.content) == (200, PNG)
        notes = await http.get(elements["notes.txt"]["url"], params={"session": session})
        assert notes.status_code == 200 and notes.text == "meeting notes\n"
        assert notes.headers["content-type"].startswith("text/plain")
        refused_bytes = await http.get(elements["run.exe"]["url"], params={"session": session})
        assert refused_bytes.status_code == 404
        stranger = await http.get(elements["dot.png"]["url"], params={"session": "s_nobody"})
        assert stranger.status_code in (401, 403, 404)
