// The thread history sidebar, over the storage HTTP API when the server has it.
//
// Expected routes (documented in /openapi.json once they exist; until then the sidebar stays
// hidden and the chat works without it):
//   GET    /api/threads?q=<text>&limit=50   -> {"threads": [{"id", "name", "updated_at"}], "next": cursor|null}
//   GET    /api/threads/{id}                -> {"id", "name", "events": [protocol v1 session events]}
//   PATCH  /api/threads/{id}  {"name"}      -> the thread
//   DELETE /api/threads/{id}                -> 204
import { h } from "./dom.js";
import { t } from "./i18n.js";

export class History {
  constructor(host, { base, onOpen }) {
    this.base = base;
    this.onOpen = onOpen;
    this.search = h("input", { type: "search", "aria-label": t("history.search"), placeholder: t("history.search") });
    this.list = h("ul", {});
    this.element = h("nav", { class: "history", "aria-label": t("history.title"), hidden: true }, [h("h2", {}, t("history.title")), this.search, this.list]);
    host.prepend(this.element);
    let timer = 0;
    this.search.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.refresh(), 250);
    });
    this.list.addEventListener("click", (e) => this.onClick(e));
  }

  async request(path, init) {
    const response = await fetch(this.base + path, { credentials: "same-origin", ...init });
    if (!response.ok) throw Object.assign(new Error(`${response.status}`), { status: response.status });
    return response.status === 204 ? null : response.json();
  }

  async refresh() {
    const q = this.search.value.trim();
    try {
      const data = await this.request(`/api/threads?limit=50${q ? `&q=${encodeURIComponent(q)}` : ""}`);
      this.render(data.threads || []);
      this.element.hidden = false;
    } catch (err) {
      // No history on this server (or not for this user): keep the sidebar out of the way.
      this.element.hidden = true;
    }
  }

  render(threads) {
    this.list.replaceChildren(
      ...threads.map((thread) =>
        h("li", { "data-thread": thread.id }, [
          h("button", { type: "button", class: "thread-open", "data-open": thread.id }, thread.name || t("history.untitled")),
          h("button", { type: "button", "data-rename": thread.id, "aria-label": `${t("history.rename")}: ${thread.name || ""}` }, "✎"),
          h("button", { type: "button", "data-delete": thread.id, "aria-label": `${t("history.delete")}: ${thread.name || ""}` }, "🗑"),
        ]),
      ),
    );
  }

  async onClick(event) {
    const open = event.target.closest("[data-open]");
    const rename = event.target.closest("[data-rename]");
    const remove = event.target.closest("[data-delete]");
    if (open) this.onOpen(open.dataset.open);
    else if (rename) {
      const name = prompt(t("history.rename"));
      if (name) {
        await this.request(`/api/threads/${encodeURIComponent(rename.dataset.rename)}`, {
          method: "PATCH",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ name }),
        });
        this.refresh();
      }
    } else if (remove && confirm(t("history.delete_confirm"))) {
      await this.request(`/api/threads/${encodeURIComponent(remove.dataset.delete)}`, { method: "DELETE" });
      this.refresh();
    }
  }

  /** The stored events of a thread, or null when the server cannot give them. */
  async events(threadId) {
    try {
      const data = await this.request(`/api/threads/${encodeURIComponent(threadId)}`);
      return Array.isArray(data.events) ? data.events : null;
    } catch {
      return null;
    }
  }
}
