"""Chat sessions: the behaviour users write, and the host actor that runs it.

Write a session as a `SessionActor` subclass (or with the decorator face, `App`), hand it to
the router (`triolet.supervisor.router.Router`), and every chat gets its own instance, run
by a supervised `SessionHost` actor with a bounded mailbox. What a session emits is a stream
of the domain events below, published to a `SessionOutput`.
"""

from ._actions import MAX_OPEN_ACTIONS, Action, PayloadSchema
from ._actor import HOOKS, SessionActor
from ._app import App
from ._commands import (
    ActionInvoked,
    AskReply,
    Command,
    EndChat,
    FileRef,
    FileUpload,
    SettingsUpdate,
    StopRequest,
    ThreadInfo,
    UserMessage,
)
from ._context import DEFAULT_ASK_USER_TIMEOUT, Done, Element, Message, SessionContext
from ._control import (
    DEFAULT_MAX_SUBSCRIBERS,
    MAX_PENDING_ASKS,
    ClosableOutput,
    Fanout,
    SessionControl,
    SessionOutput,
)
from ._events import (
    ActionSpec,
    ActionsSent,
    AskEnded,
    AskStarted,
    ElementSent,
    MessageRemoved,
    MessageSent,
    MessageUpdated,
    SessionEvent,
    SessionFailed,
    SettingsSent,
    StepEnded,
    StepStarted,
    StepUpdated,
    StreamEnded,
    TaskEnded,
    TaskStarted,
    TokenStreamed,
)
from ._host import DEFAULT_CRASH_PERIOD, DEFAULT_MAX_CRASHES, CrashBudget, SessionHost
from ._record import positional
from ._recording import RecordingOutput
from ._snapshot import MemorySnapshots, Snapshot, SnapshotStore
from ._steps import Step, current_context, current_step, step

__all__ = [
    "DEFAULT_ASK_USER_TIMEOUT",
    "DEFAULT_CRASH_PERIOD",
    "DEFAULT_MAX_CRASHES",
    "DEFAULT_MAX_SUBSCRIBERS",
    "HOOKS",
    "MAX_OPEN_ACTIONS",
    "MAX_PENDING_ASKS",
    "Action",
    "ActionInvoked",
    "ActionSpec",
    "ActionsSent",
    "App",
    "AskEnded",
    "AskReply",
    "AskStarted",
    "ClosableOutput",
    "Command",
    "CrashBudget",
    "Done",
    "Element",
    "ElementSent",
    "EndChat",
    "Fanout",
    "FileRef",
    "FileUpload",
    "MemorySnapshots",
    "Message",
    "MessageRemoved",
    "MessageSent",
    "MessageUpdated",
    "PayloadSchema",
    "RecordingOutput",
    "SessionActor",
    "SessionContext",
    "SessionControl",
    "SessionEvent",
    "SessionFailed",
    "SessionHost",
    "SessionOutput",
    "SettingsSent",
    "SettingsUpdate",
    "Snapshot",
    "SnapshotStore",
    "Step",
    "StepEnded",
    "StepStarted",
    "StepUpdated",
    "StopRequest",
    "StreamEnded",
    "TaskEnded",
    "TaskStarted",
    "ThreadInfo",
    "TokenStreamed",
    "UserMessage",
    "current_context",
    "current_step",
    "positional",
    "step",
]
