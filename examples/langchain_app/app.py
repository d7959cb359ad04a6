"""A LangChain chat model streamed into the chat through the asyncio bridge.

LangChain's async API needs asyncio; Triolet runs one asyncio loop in a
dedicated thread and iterates ``astream`` from Trio with backpressure and
cancellation carried across (the stop button cancels the model's stream).
The model here is LangChain's own fake chat model, so the example runs
offline; swap in a real one (``ChatOpenAI(...)``) unchanged.

    pip install 'triolet[langchain]' && triolet run examples/langchain_app/triolet.toml
"""

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from triolet import SessionActor
from triolet.actors import shared_asyncio_thread
from triolet.supervisor.session import UserMessage


def make_model() -> GenericFakeChatModel:
    replies = iter([AIMessage(content="LangChain streams through Triolet token by token")] * 1000)
    return GenericFakeChatModel(messages=replies)


class LangChainChat(SessionActor):
    async def on_message(self, message: UserMessage) -> None:
        model = make_model()
        reply = await self.stream_start(author="LangChain")
        async with (
            shared_asyncio_thread() as asyncio_loop,
            asyncio_loop.iterate(model.astream, message.content) as chunks,
        ):
            async for chunk in chunks:
                await reply.stream_token(str(chunk.content))
        await reply.stream_end()
