"""The stored-thread routes over a real loopback server, on real SQLite and real PostgreSQL.

Every test runs against both backends (``backend_url``); the PostgreSQL half skips visibly
without a server, or fails under ``TRIOLET_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import time
from pathlib import Path

import storage_harness
import trio
from http_harness import until
from openapi_spec_validator import validate
from storage_http_harness import StorageHarness, bearer, storage_server

from triolet.storage import (
    ElementRecord,
    FeedbackRecord,
    StepRecord,
    ThreadRecord,
)
from triolet.transport import anonymous_owner

backend_url = storage_harness.backend_url

ALICE = bearer("alice")
BOB = bearer("bob")


async def seed(
    h: StorageHarness,
    owner: str,
    thread: str,
    *,
    name: str | None = None,
    tags: tuple[str, ...] = (),
    updated: float = 1_000.0,
    text: str = "hello",
) -> None:
    await h.backend.write_batch(
        [
            ThreadRecord(
                id=thread,
                user_id=owner,
                name=name,
                tags=tags,
                created_at=updated,
                updated_at=updated,
            ),
            StepRecord(
                id=f"{thread}-u", thread_id=thread, role="user", content=text, created_at=updated
            ),
            StepRecord(
                id=f"{thread}-a",
                thread_id=thread,
                role="assistant",
                author="bot",
                content=f"re: {text}",
                created_at=updated + 1,
            ),
            StepRecord(
                id=f"{thread}-t",
                thread_id=thread,
                type="tool",
                name="search",
                parent_id=f"{thread}-a",
                input={"q": text},
                status="ok",
                created_at=updated + 2,
            ),
        ]
    )


async def test_pages_cover_every_thread_once_newest_first(backend_url: str, tmp_path: Path) -> None:
    async with storage_server(backend_url, tmp_path / "files") as h:
        for i in range(7):
            await seed(h, "alice", f"t{i}", name=f"chat {i}", updated=1_000.0 + i)
        await seed(h, "bob", "bob-1", updated=5_000.0)
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
            page = await h.client.get("/api/threads", params=params, headers=ALICE)
            assert page.status_code == 200, page.text
            body = page.json()
            seen += [t["id"] for t in body["threads"]]
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert pages == 3
        assert seen == [f"t{i}" for i in reversed(range(7))]
        first = (await h.client.get("/api/threads", headers=ALICE)).json()["threads"][0]
        assert first["name"] == "chat 6" and "user_id" not in first


async def test_search_by_name_and_content_and_tags(backend_url: str, tmp_path: Path) -> None:
    async with storage_server(backend_url, tmp_path / "files") as h:
        await seed(h, "alice", "a", name="Invoice questions", tags=("work",), text="pay")
        await seed(h, "alice", "b", name="Holiday", tags=("home", "work"), text="INVOICE 42%")
        await seed(h, "alice", "c", name="Other", tags=("home",), text="nothing")
        await seed(h, "bob", "d", name="invoice", tags=("work",))

        async def ids(**params: str | list[str]) -> list[str]:
            response = await h.client.get("/api/threads", params=params, headers=ALICE)
            assert response.status_code == 200, response.text
            return sorted(t["id"] for t in response.json()["threads"])

        assert await ids(q="invoice") == ["a", "b"]
        assert await ids(q="42%") == ["b"]  # LIKE wildcards are literal
        assert await ids(q="_") == []  # no name or message holds an underscore
        assert await ids(tag="home") == ["b", "c"]
        assert await ids(tag=["home", "work"]) == ["b"]
        assert await ids(q="invoice", tag="home") == ["b"]
        listed = (await h.client.get("/api/threads", params={"tag": "work"}, headers=ALICE)).json()
        assert {tuple(t["tags"]) for t in listed["threads"]} == {("work",), ("home", "work")}


async def test_bad_queries_are_clear_errors(backend_url: str, tmp_path: Path) -> None:
    async with storage_server(backend_url, tmp_path / "files") as h:
        await seed(h, "alice", "a")
        cases = [
            ({"limit": "0"}, 422, "invalid_query"),
            ({"limit": "201"}, 422, "invalid_query"),
            ({"limit": "ten"}, 422, "invalid_query"),
            ({"cursor": "not-a-cursor"}, 400, "invalid_cursor"),
            ({"cursor": "W1wiYVwiXQ"}, 400, "invalid_cursor"),  # valid base64, wrong shape
            ({"cursor": "x" * 600}, 400, "invalid_cursor"),
            ({"q": "x" * 201}, 422, "invalid_query"),
            ({"tag": [f"t{i}" for i in range(17)]}, 422, "invalid_query"),
        ]
        for params, status, code in cases:
            response = await h.client.get("/api/threads", params=params, headers=ALICE)
            assert (response.status_code, response.json()["error"]) == (status, code), params
            assert response.headers["content-type"] == "application/problem+json"
        # The server is unharmed.
        assert (await h.client.get("/api/threads", headers=ALICE)).json()["threads"]


async def test_one_thread_with_steps_elements_and_feedback(
    backend_url: str, tmp_path: Path
) -> None:
    async with storage_server(backend_url, tmp_path / "files") as h:
        await seed(h, "alice", "t1", name="Plans")
        await h.backend.write_batch(
            [
                ElementRecord(
                    id="e1",
                    thread_id="t1",
                    step_id="t1-a",
                    kind="image",
                    name="cat.png",
                    mime="image/png",
                    storage_key="0" * 32,
                    size=3,
                ),
                ElementRecord(
                    id="e2", thread_id="t1", kind="file", name="x", url="https://example.com/x"
                ),
                FeedbackRecord(thread_id="t1", step_id="t1-a", user_id="alice", score=1),
                FeedbackRecord(thread_id="t1", step_id="t1-a", user_id="carol", score=-1),
            ]
        )
        response = await h.client.get("/api/threads/t1", headers=ALICE)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["thread"]["name"] == "Plans"
        assert [s["id"] for s in body["steps"]] == ["t1-u", "t1-a", "t1-t"]
        tool = body["steps"][2]
        assert (tool["type"], tool["parent_id"], tool["input"]) == ("tool", "t1-a", {"q": "hello"})
        urls = {e["id"]: e["url"] for e in body["elements"]}
        assert urls == {"e1": "/api/elements/e1", "e2": "https://example.com/x"}
        assert "storage_key" not in body["elements"][0]
        assert [(f["message"], f["score"]) for f in body["feedback"]] == [("t1-a", 1)]


async def test_other_users_threads_are_not_found(backend_url: str, tmp_path: Path) -> None:
    async with storage_server(backend_url, tmp_path / "files") as h:
        await seed(h, "alice", "t1", name="mine")
        for method, path, kwargs in [
            ("GET", "/api/threads/t1", {}),
            ("PATCH", "/api/threads/t1", {"json": {"name": "stolen"}}),
            ("DELETE", "/api/threads/t1", {}),
            ("GET", "/api/threads/t1/export", {}),
            ("POST", "/api/messages/t1-a/feedback", {"json": {"score": 1}}),
        ]:
            response = await h.client.request(method, path, headers=BOB, **kwargs)
            assert (response.status_code, response.json()["error"]) == (404, "not_found"), path
        assert (await h.client.get("/api/threads", headers=BOB)).json()["threads"] == []
        # ... and alice's thread is untouched.
        detail = (await h.client.get("/api/threads/t1", headers=ALICE)).json()
        assert detail["thread"]["name"] == "mine" and detail["feedback"] == []
        refused = await h.client.get("/api/threads", headers=bearer("refused"))
        assert (refused.status_code, refused.json()["error"]) == (401, "auth_failed")


async def test_rename_delete_and_purge(backend_url: str, tmp_path: Path) -> None:
    async with storage_server(backend_url, tmp_path / "files") as h:
        await seed(h, "alice", "t1", name="old")
        await seed(h, "alice", "t2", name="keep")
        renamed = await h.client.patch("/api/threads/t1", json={"name": "new"}, headers=ALICE)
        assert renamed.status_code == 200, renamed.text
        assert renamed.json()["name"] == "new"
        assert renamed.json()["updated_at"] > 1_000.0
        listed = (await h.client.get("/api/threads", headers=ALICE)).json()["threads"]
        assert listed[0]["id"] == "t1"  # a rename counts as an update
        for body, fault in [
            ({"name": 5}, "'name'"),
            ({"name": ""}, "'name'"),
            ({}, "'name' is required"),
            ({"name": "x", "extra": 1}, "'extra' is not known"),
        ]:
            bad = await h.client.patch("/api/threads/t1", json=body, headers=ALICE)
            assert (bad.status_code, bad.json()["error"]) == (422, "invalid_body")
            assert fault in bad.json()["detail"]
        not_json = await h.client.patch(
            "/api/threads/t1", content=b"{", headers={**ALICE, "content-type": "application/json"}
        )
        assert (not_json.status_code, not_json.json()["error"]) == (400, "invalid_json")

        deleted = await h.client.delete("/api/threads/t1", headers=ALICE)
        assert deleted.status_code == 204
        assert (await h.client.get("/api/threads/t1", headers=ALICE)).status_code == 404
        again = await h.client.delete("/api/threads/t1", headers=ALICE)
        assert again.status_code == 404
        ids = [
            t["id"] for t in (await h.client.get("/api/threads", headers=ALICE)).json()["threads"]
        ]
        assert ids == ["t2"]
        # Soft: still in the database until purged.
        assert await h.backend.purge_deleted(3600.0) == 0
        assert await h.backend.purge_deleted(0.0, now=time.time() + 1) == 1
        assert await h.backend.purge_deleted(0.0, now=time.time() + 1) == 0


async def test_purger_removes_old_deleted_threads(backend_url: str, tmp_path: Path) -> None:
    from triolet.transport import run_purger

    async with storage_server(backend_url, tmp_path / "files") as h:
        await seed(h, "alice", "t1")
        assert (await h.client.delete("/api/threads/t1", headers=ALICE)).status_code == 204
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: run_purger(
                    h.backend,
                    older_than=0.0,
                    interval=0.05,
                    clock=lambda: time.time() + 1,
                    task_status=task_status,
                )
            )

            async def purged() -> bool:
                # Once purged, writing the thread again makes a fresh, visible one; before,
                # the stored deletion stands (an upsert never clears deleted_at).
                await h.backend.write_batch([ThreadRecord(id="t1", user_id="alice")])
                response = await h.client.get("/api/threads/t1", headers=ALICE)
                return response.status_code == 200

            await until(purged)
            nursery.cancel_scope.cancel()


async def test_export_json_and_markdown(backend_url: str, tmp_path: Path) -> None:
    async with storage_server(backend_url, tmp_path / "files") as h:
        await seed(h, "alice", "t1", name='Q3 "plan"/draft', text="the plan")
        as_json = await h.client.get("/api/threads/t1/export", headers=ALICE)
        assert as_json.status_code == 200
        assert as_json.headers["content-type"].startswith("application/json")
        assert "attachment" in as_json.headers["content-disposition"]
        assert 'filename="Q3 _plan__draft.json"' in as_json.headers["content-disposition"]
        doc = as_json.json()
        assert doc["thread"]["id"] == "t1" and len(doc["steps"]) == 3
        md = await h.client.get(
            "/api/threads/t1/export", params={"format": "markdown"}, headers=ALICE
        )
        assert md.status_code == 200
        assert md.headers["content-type"].startswith("text/markdown")
        assert md.text.startswith('# Q3 "plan"/draft')
        assert "the plan" in md.text and "re: the plan" in md.text
        assert ".md" in md.headers["content-disposition"]
        bad = await h.client.get("/api/threads/t1/export", params={"format": "pdf"}, headers=ALICE)
        assert (bad.status_code, bad.json()["error"]) == (422, "invalid_query")


async def test_feedback_on_a_message(backend_url: str, tmp_path: Path) -> None:
    async with storage_server(backend_url, tmp_path / "files") as h:
        await seed(h, "alice", "t1")
        given = await h.client.post(
            "/api/messages/t1-a/feedback", json={"score": 1, "comment": "great"}, headers=ALICE
        )
        assert given.status_code == 201, given.text
        assert given.json() | {"created_at": 0} == {
            "message": "t1-a",
            "thread": "t1",
            "score": 1,
            "comment": "great",
            "created_at": 0,
        }
        replaced = await h.client.post(
            "/api/messages/t1-a/feedback", json={"score": -1}, headers=ALICE
        )
        assert replaced.status_code == 201
        feedback = (await h.client.get("/api/threads/t1", headers=ALICE)).json()["feedback"]
        assert [(f["score"], f["comment"]) for f in feedback] == [(-1, None)]
        md = (await h.client.get("/api/threads/t1/export?format=markdown", headers=ALICE)).text
        assert "feedback -1" in md
        for body in [
            {"score": "1"},
            {"score": 1.5},
            {"score": True},
            {"score": 9},
            {"score": 1, "comment": 3},
            {"comment": "x"},
            {"score": 1, "x": 1},
        ]:
            bad = await h.client.post("/api/messages/t1-a/feedback", json=body, headers=ALICE)
            assert (bad.status_code, bad.json()["error"]) == (422, "invalid_body"), body
        array = await h.client.post("/api/messages/t1-a/feedback", json=[1], headers=ALICE)
        assert (array.status_code, array.json()["error"]) == (422, "invalid_body")
        long = await h.client.post(
            "/api/messages/t1-a/feedback",
            json={"score": 1, "comment": "x" * 10_001},
            headers=ALICE,
        )
        assert (long.status_code, long.json()["error"]) == (422, "invalid_body")
        missing = await h.client.post(
            "/api/messages/nope/feedback", json={"score": 1}, headers=ALICE
        )
        assert missing.status_code == 404


async def test_anonymous_callers_reach_only_their_sessions_thread(
    backend_url: str, tmp_path: Path
) -> None:
    async with storage_server(backend_url, tmp_path / "files", with_writer=True) as h:
        mine = await h.new_session()
        theirs = await h.new_session()
        alices = await h.new_session("alice")
        for session, headers in [(mine, {}), (theirs, {}), (alices, ALICE)]:
            sent = await h.client.post(
                f"/api/sessions/{session}/messages",
                json={"content": f"hi from {session}"},
                headers=headers,
            )
            assert sent.status_code == 200, sent.text

        async def listed(headers: dict[str, str]) -> list[str]:
            response = await h.client.get("/api/threads", headers=headers)
            assert response.status_code == 200, response.text
            return [t["id"] for t in response.json()["threads"]]

        # The writer stores the conversation: the thread id is the session id.
        await until(lambda: _nonempty(listed({"X-Triolet-Session": mine})))
        assert await listed({"X-Triolet-Session": mine}) == [mine]
        assert await listed({"X-Triolet-Session": theirs}) == [theirs]
        await until(lambda: _nonempty(listed(ALICE)))
        assert await listed(ALICE) == [alices]
        # Naming a signed-in user's session reaches nothing.
        assert await listed({"X-Triolet-Session": alices}) == []
        nobody = await h.client.get("/api/threads")
        assert (nobody.status_code, nobody.json()["error"]) == (401, "session_required")
        detail = await h.client.get(f"/api/threads/{mine}", params={"session": mine})
        assert detail.status_code == 200
        contents = [s["content"] for s in detail.json()["steps"]]
        assert f"hi from {mine}" in contents and f"echo: hi from {mine}" in contents
        other = await h.client.get(f"/api/threads/{theirs}", params={"session": mine})
        assert other.status_code == 404
        assert anonymous_owner(mine) == f"anon:{mine}"


async def _nonempty(result: object) -> bool:
    return bool(await result)  # type: ignore[misc]


async def test_openapi_lists_the_thread_routes_and_is_valid(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/t.sqlite3"
    async with storage_server(url, tmp_path / "files") as h:
        document = (await h.client.get("/openapi.json")).json()
        validate(document)
        paths = document["paths"]
        assert set(paths["/api/threads/{thread_id}"]) == {"get", "patch", "delete"}
        for path in [
            "/api/threads",
            "/api/threads/{thread_id}/export",
            "/api/messages/{message_id}/feedback",
            "/api/sessions/{session_id}/files",
            "/api/files/{key}",
            "/api/elements/{element_id}",
        ]:
            assert path in paths, path
        assert "ThreadDetailOut" in document["components"]["schemas"]
    async with storage_server(url, tmp_path / "files", with_files=False) as h:
        paths = (await h.client.get("/openapi.json")).json()["paths"]
        assert "/api/threads" in paths and "/api/files/{key}" not in paths
        upload = await h.client.post("/api/sessions/x/files", files={"file": b"x"})
        assert upload.status_code == 404
    async with storage_server(url, tmp_path / "files", with_storage=False, with_files=False) as h:
        paths = (await h.client.get("/openapi.json")).json()["paths"]
        assert "/api/threads" not in paths
        assert (await h.client.get("/api/threads")).status_code == 404
