"""A thread as a document: JSON (complete, for machines) or Markdown (readable, for people).

Both are built from a `ThreadDetail`, so they show exactly what ``get_thread`` returns and
nothing of another user's. Markdown shows the conversation: messages in order with who
spoke, trace steps as an indented outline under the message they belong to (any depth),
elements as links or names, and feedback as a note under the message it rates.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

from ._backend import ExportFormat, ThreadDetail
from ._records import MESSAGE, StepRecord

__all__ = ["export"]

EXPORT_VERSION = 1


def export(detail: ThreadDetail, format: ExportFormat) -> str:
    if format == "json":
        return _json(detail)
    if format == "markdown":
        return _markdown(detail)
    raise ValueError(f'format must be "json" or "markdown", not {format!r}')


def _json(detail: ThreadDetail) -> str:
    doc: dict[str, Any] = {
        "export_version": EXPORT_VERSION,
        "thread": dataclasses.asdict(detail.thread),
        "steps": [dataclasses.asdict(s) for s in detail.steps],
        "elements": [dataclasses.asdict(e) for e in detail.elements],
        "feedback": [dataclasses.asdict(f) | {"id": f.id} for f in detail.feedback],
    }
    return json.dumps(doc, ensure_ascii=False, indent=2)


def _when(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _speaker(step: StepRecord) -> str:
    who = step.author or step.role or "message"
    return who if step.role in (None, who) else f"{who} ({step.role})"


def _markdown(detail: ThreadDetail) -> str:
    thread = detail.thread
    lines = [f"# {thread.name or 'Untitled conversation'}", ""]
    lines.append(f"*Started {_when(thread.created_at)}, last updated {_when(thread.updated_at)}*")
    if thread.tags:
        lines.append("Tags: " + ", ".join(f"`{t}`" for t in thread.tags))
    lines.append("")
    children: dict[str | None, list[StepRecord]] = {}
    known = {s.id for s in detail.steps}
    for step in detail.steps:
        parent = step.parent_id if step.parent_id in known else None
        children.setdefault(parent, []).append(step)
    elements: dict[str | None, list[str]] = {}
    for el in detail.elements:
        label = f"[{el.name}]({el.url})" if el.url else f"`{el.name}`"
        elements.setdefault(el.step_id, []).append(f"{label} ({el.kind})")
    ratings: dict[str, list[str]] = {}
    for fb in detail.feedback:
        note = f"feedback {fb.score:+d}" + (f": {fb.comment}" if fb.comment else "")
        ratings.setdefault(fb.step_id, []).append(note)

    def outline(step: StepRecord, depth: int) -> None:
        pad = "  " * depth
        state = f", {step.status}" if step.status else ""
        lines.append(f"{pad}- *{step.type}* **{step.name or step.id}**{state}")
        for child in children.get(step.id, ()):
            if child.type == MESSAGE:
                message(child)
            else:
                outline(child, depth + 1)

    def message(step: StepRecord) -> None:
        lines.append(f"### {_speaker(step)}")
        lines.append("")
        lines.append(step.content or "")
        if step.incomplete:
            lines.append("")
            lines.append("*(incomplete: the stream was cut short)*")
        for item in elements.get(step.id, ()):
            lines.append(f"- attachment: {item}")
        for note in ratings.get(step.id, ()):
            lines.append(f"> {note}")
        lines.append("")
        for child in children.get(step.id, ()):
            if child.type == MESSAGE:
                message(child)
            else:
                outline(child, 0)
        if any(c.type != MESSAGE for c in children.get(step.id, ())):
            lines.append("")

    for step in children.get(None, ()):
        if step.type == MESSAGE:
            message(step)
        else:
            outline(step, 0)
            lines.append("")
    loose = elements.get(None, ())
    if loose:
        lines.append("## Attachments")
        lines.extend(f"- {item}" for item in loose)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
