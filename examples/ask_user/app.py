"""Ask the user for text and for a choice, with a timeout, in the middle of a hook.

triolet run examples/ask_user/triolet.toml
"""

from triolet import Action, SessionActor


class Onboarding(SessionActor):
    async def on_chat_start(self) -> None:
        name = await self.ask_text("What is your name?", timeout=300)
        if name is None:
            await self.send("No answer; ask me anything when you are back.")
            return
        self.state["name"] = name
        choice = await self.ask_action(
            f"Hello {name}! Tea or coffee?",
            [Action(name="tea", label="Tea"), Action(name="coffee", label="Coffee")],
            timeout=300,
        )
        drink = choice.name if choice is not None else "nothing"
        self.state["drink"] = drink
        await self.send(f"{name} drinks {drink}.")
