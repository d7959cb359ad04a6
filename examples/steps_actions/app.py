"""Steps nested to any depth, elements, and action buttons with a validated payload.

triolet run examples/steps_actions/triolet.toml
"""

from pydantic import BaseModel, Field

from triolet import Action, Element, SessionActor
from triolet.supervisor.session import UserMessage


class Rating(BaseModel):
    stars: int = Field(ge=1, le=5)


class Researcher(SessionActor):
    async def on_message(self, message: UserMessage) -> None:
        async with self.step("answer", type="run", input=message.content) as answer:
            async with self.step("retrieve", type="retrieval") as retrieve:
                async with self.step("embed", type="embedding", metadata={"model": "fake-embed"}):
                    pass
                retrieve.output = ["doc-1", "doc-2"]
            async with self.step(
                "generate", type="llm", metadata={"model": "fake-llm", "tokens_in": 12}
            ) as generate:
                generate.output = f"Two documents mention {message.content!r}."
            answer.output = generate.output
        reply = await self.send(
            answer.output,
            elements=[Element(kind="text", name="sources.txt", content="doc-1\ndoc-2")],
        )
        await self.send_actions(
            [Action(name="rate", label="Rate this answer", payload={"stars": 5}, schema=Rating)],
            message=reply,
        )

    async def on_action(self, action: Action) -> None:
        rating = action.payload
        assert isinstance(rating, Rating)
        await self.send(f"Thanks for {rating.stars} stars.")
