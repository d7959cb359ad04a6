"""A session for the browser tests: every element kind, hostile payloads, and a token flood.

    triolet run tests/webui_showcase.py

- ``xss``: a message, a step's output, an element's name and a file's name carrying script and
  HTML payloads (the page must show them as text, and nothing may run).
- ``elements``: one element of each kind (image, text, table, plot, file), inline.
- ``side``: a reply whose text element opens in the side panel.
- ``flood N``: a reply streamed as N tokens as fast as the server can publish them.
- anything else: echoed.
"""

from __future__ import annotations

import base64

import trio

from triolet import Element, SessionActor
from triolet.supervisor.session import UserMessage

#: Each sets ``window.__xss`` if it ever runs.
PAYLOADS = (
    "<script>window.__xss = 'script'</script>",
    "<img src=x onerror=\"window.__xss = 'img'\">",
    "<a href=\"javascript:window.__xss = 'link'\">click</a>",
    "<svg onload=\"window.__xss = 'svg'\"></svg>",
    "<iframe srcdoc=\"<script>parent.__xss = 'iframe'</script>\"></iframe>",
)
PAYLOAD = " ".join(PAYLOADS)

#: A 1x1 PNG, so the image element renders without a file store.
PIXEL = (
    "data:image/png;base64,"
    + base64.b64encode(
        bytes.fromhex(
            "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
            "0000000d4944415478da63f8cfc0f01f0005000201ffa3b6e3b60000000049454e44ae426082"
        )
    ).decode()
)


class Showcase(SessionActor):
    async def on_chat_start(self) -> None:
        await self.send("Showcase ready.")

    async def on_message(self, message: UserMessage) -> None:
        text = message.content
        if text == "xss":
            async with self.step(f"tool {PAYLOADS[1]}", type="tool", input=PAYLOAD) as step:
                step.output = PAYLOAD
            await self.send(
                f"model says: {PAYLOAD}",
                elements=[
                    Element(kind="text", name=f"notes {PAYLOADS[1]}", content=PAYLOAD),
                    Element(kind="file", name=f"report {PAYLOADS[0]}.pdf", data=b"%PDF-1.4"),
                ],
            )
        elif text == "elements":
            await self.send(
                "Here is every kind:\n\n```python\nprint('hi')\n```",
                elements=[
                    Element(kind="image", name="pixel.png", url=PIXEL),
                    Element(kind="text", name="notes.txt", content="line one\nline two"),
                    Element(
                        kind="table",
                        name="scores",
                        content={"columns": ["name", "score"], "rows": [["ada", 3], ["bob", 5]]},
                    ),
                    Element(
                        kind="plot",
                        name="growth",
                        content={
                            "data": [
                                {"x": [1, 2, 3, 4], "y": [1, 4, 9, 16], "name": "squares"},
                                {"x": [1, 2, 3, 4], "y": [2, 3, 5, 7], "type": "bar"},
                            ],
                            "layout": {"title": "Growth"},
                        },
                    ),
                    Element(kind="file", name="data.csv", url="/api/elements/none"),
                ],
            )
        elif text == "side":
            await self.send(
                "Notes are in the side panel.",
                elements=[
                    Element(kind="text", name="side notes", content="side one", display="side")
                ],
            )
        elif text.startswith("flood "):
            count = int(text.split()[1])
            reply = await self.stream_start(author="Flood")
            for index in range(count):
                reply.stream_token(f"t{index} ")
                if index % 200 == 199:
                    await trio.lowlevel.checkpoint()  # let the transport run (a model yields too)
            await reply.stream_end()
        else:
            await self.send(f"echo: {text}")
