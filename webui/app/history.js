// The thread history sidebar, over the storage HTTP API (transport/_threads_api.py):
//   GET    /api/threads?q=&limit=        -> {threads: [{id, name, updated_at, ...}], next_cursor}
//   GET    /api/threads/{id}             -> {thread, steps, elements, feedback}
//   PATCH  /api/threads/{id}  {name}     -> the thread
//   DELETE /api/threads/{id}             -> 204
//
// Whose threads: a signed-in user's are listed in one call. An anonymous visitor has no
// identity, so the server only shows a thread to whoever names the session that started it
// (transport/_scope.py). The page therefore remembers the threads this browser started (their
// ids, in localStorage) and asks for each with its own scope: the visitor sees exactly their
// own conversations, and nobody else's.
import { h } from "./dom.js";
import { t } from "./i18n.js";

const REMEMBERED = 50; // threads an anonymous browser keeps track of

export class History {
  /**
   * @param {HTMLElement} host
   * @param {object} options
   * @param {import("./api.js").Api} options.api
   * @param {string} options.storageKey   localStorage key of the remembered thread ids
   * @param {(threadId: string) => void} options.onOpen
   * @param {() => boolean} options.signedIn
   */
  constructor(host, { api, storageKey, onOpen, signedIn }) {
    this.api = api;
    this.storageKey = storageKey;
    this.onOpen = onOpen;
    this.signedIn = signedIn;
    this.current = null;
    this.threads = [];
    this.search = h("input", { type: "search", "aria-label": t("history.search"), placeholder: t("history.search") });
    this.list = h("ul", { class: "history-list" });
    this.status = h("p", { class: "history-status", role: "status" });
    this.element = h("nav", { class: "history", "aria-label": t("history.title") }, [h("h2", {}, t("history.title")), this.search, this.status, this.list]);
    host.prepend(this.element);
    let timer = 0;
    this.search.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.refresh(), 200);
    });
    this.list.addEventListener("click", (e) => this.onClick(e));
    this.list.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && e.target.matches("[data-rename-input]")) this.closeRename();
    });
    this.list.addEventListener("submit", (e) => {
      e.preventDefault();
      const input = e.target.querySelector("[data-rename-input]");
      if (input) this.rename(input.dataset.renameInput, input.value.trim());
    });
  }

  remembered() {
    try {
      const ids = JSON.parse(localStorage.getItem(this.storageKey) || "[]");
      return Array.isArray(ids) ? ids.filter((id) => typeof id === "string") : [];
    } catch {
      return [];
    }
  }

  /** Note the thread this page is in (the newest first); mark it current in the list. */
  remember(threadId) {
    this.current = threadId;
    const ids = [threadId, ...this.remembered().filter((id) => id !== threadId)].slice(0, REMEMBERED);
    localStorage.setItem(this.storageKey, JSON.stringify(ids));
    this.refresh();
  }

  forget(threadId) {
    localStorage.setItem(this.storageKey, JSON.stringify(this.remembered().filter((id) => id !== threadId)));
  }

  /** Coalesce the refreshes a burst of activity asks for into one request. */
  refreshSoon() {
    clearTimeout(this.soon);
    this.soon = setTimeout(() => this.refresh(), 300);
  }

  async refresh() {
    const q = this.search.value.trim();
    const query = `limit=50${q ? `&q=${encodeURIComponent(q)}` : ""}`;
    const ticket = (this.ticket = (this.ticket || 0) + 1);
    let threads;
    try {
      if (this.signedIn()) {
        threads = (await this.api.json(`/api/threads?${query}`)).threads || [];
      } else {
        // One small request per remembered thread, in parallel; a thread that is gone (deleted,
        // purged) answers an empty page and is forgotten.
        const pages = await Promise.all(
          this.remembered().map((id) =>
            this.api.json(`/api/threads?${query}`, { scope: id }).then(
              (page) => ({ id, threads: page.threads || [] }),
              () => ({ id, threads: null }),
            ),
          ),
        );
        threads = [];
        for (const page of pages) {
          if (page.threads && page.threads.length) threads.push(...page.threads);
          else if (page.threads && !q && page.id !== this.current) this.forget(page.id);
        }
      }
    } catch {
      threads = null;
    }
    if (ticket !== this.ticket) return; // a newer search has started meanwhile
    if (threads === null) {
      this.status.textContent = t("history.unavailable");
      return;
    }
    this.threads = threads.sort((a, b) => (b.updated_at || 0) - (a.updated_at || 0));
    this.status.textContent = this.threads.length ? "" : t(q ? "history.no_match" : "history.empty");
    this.render();
  }

  render() {
    // A rename in progress survives a background refresh (new messages refresh the list): the
    // open form, with what was typed and the focus, is kept in place of that thread's row.
    const editing = this.list.querySelector("form.rename-form");
    const editingId = editing && editing.querySelector("[data-rename-input]").dataset.renameInput;
    const hadFocus = editing && editing.contains(document.activeElement) ? document.activeElement : null;
    // So does keyboard focus on a row's button: a refresh must not drop a keyboard user's place
    // (the same button of the same thread gets the focus back).
    const active = !hadFocus && this.list.contains(document.activeElement) ? document.activeElement : null;
    const focusKey = active && ["open", "rename", "delete"].find((key) => active.dataset[key] !== undefined);
    const focusThread = focusKey && active.dataset[focusKey];
    this.list.replaceChildren(
      ...this.threads.map((thread) => {
        if (thread.id === editingId) return h("li", { "data-thread": thread.id }, [editing]);
        const name = thread.name || t("history.untitled");
        const when = thread.updated_at ? new Date(thread.updated_at * 1000).toLocaleString() : "";
        return h("li", { "data-thread": thread.id }, [
          h("button", { type: "button", class: "thread-open", "data-open": thread.id, "aria-current": thread.id === this.current ? "true" : null, title: when }, name),
          h("button", { type: "button", class: "icon", "data-rename": thread.id, "aria-label": t("history.rename_named", { name }), title: t("history.rename") }, "✎"),
          h("button", { type: "button", class: "icon", "data-delete": thread.id, "aria-label": t("history.delete_named", { name }), title: t("history.delete") }, "🗑"),
        ]);
      }),
    );
    if (hadFocus && hadFocus.isConnected) hadFocus.focus();
    if (focusKey) {
      const again = [...this.list.querySelectorAll(`[data-${focusKey}]`)].find((el) => el.dataset[focusKey] === focusThread);
      if (again) again.focus();
    }
  }

  /** Close an open rename form (Escape, or after saving) by drawing the list again. */
  closeRename() {
    const form = this.list.querySelector("form.rename-form");
    if (form) form.remove();
    this.render();
  }

  async onClick(event) {
    const open = event.target.closest("[data-open]");
    const rename = event.target.closest("[data-rename]");
    const remove = event.target.closest("[data-delete]");
    if (open) {
      this.current = open.dataset.open;
      this.onOpen(open.dataset.open);
      this.render();
    } else if (rename) {
      // Rename in place: the name becomes a small form (Enter saves, Escape cancels).
      const id = rename.dataset.rename;
      const thread = this.threads.find((th) => th.id === id);
      const input = h("input", { type: "text", value: (thread && thread.name) || "", "data-rename-input": id, "aria-label": t("history.rename"), maxlength: "256" });
      const form = h("form", { class: "rename-form" }, [input, h("button", { type: "submit" }, t("history.save"))]);
      rename.closest("li").replaceChildren(form);
      input.focus();
      input.select();
    } else if (remove && confirm(t("history.delete_confirm"))) {
      const id = remove.dataset.delete;
      try {
        await this.api.json(`/api/threads/${encodeURIComponent(id)}`, { method: "DELETE", scope: this.scopeOf(id) });
        this.forget(id);
      } catch (err) {
        this.status.textContent = t("error.generic", { message: err.message });
      }
      this.refresh();
    }
  }

  async rename(id, name) {
    const form = this.list.querySelector("form.rename-form");
    if (form) form.remove(); // saved: the refresh below draws the row with its new name
    if (name) {
      try {
        await this.api.json(`/api/threads/${encodeURIComponent(id)}`, { method: "PATCH", body: { name }, scope: this.scopeOf(id) });
      } catch (err) {
        this.status.textContent = t("error.generic", { message: err.message });
      }
    }
    await this.refresh();
    const again = this.list.querySelector(`[data-rename="${CSS.escape(id)}"]`);
    if (again) again.focus();
  }

  /** The anonymous scope of a thread is its own id (the session that started it). */
  scopeOf(threadId) {
    return this.signedIn() ? null : threadId;
  }

  /** A stored thread as protocol events (plus its feedback), or null when unavailable. */
  async load(threadId) {
    try {
      const detail = await this.api.json(`/api/threads/${encodeURIComponent(threadId)}`, { scope: this.scopeOf(threadId) });
      return threadToEvents(detail, this.scopeOf(threadId));
    } catch {
      return null;
    }
  }
}

/**
 * Turn the stored shape `{thread, steps, elements, feedback}` into the session events the
 * live view already knows how to show (docs/PROTOCOL.md section 5), so a stored thread and a
 * live one go through the same code. Stored steps come in the thread's order; a message is a
 * step of `type: "message"`, any other type is a trace step whose `parent_id` is either its
 * parent step or the message it belongs to.
 * @returns {{events: object[], feedback: Map<string, {score: number, comment: string|null}>}}
 */
export function threadToEvents(detail, scope) {
  const events = [];
  const messages = new Set();
  const steps = new Set();
  for (const step of detail.steps || []) {
    if (step.type === "message") {
      messages.add(step.id);
      const metadata = step.incomplete ? { ...(step.metadata || {}), incomplete: true } : step.metadata;
      events.push({ type: "message", id: step.id, role: step.role || "assistant", content: step.content || "", author: step.author || undefined, created_at: step.created_at, metadata: metadata || undefined, streaming: false });
      continue;
    }
    steps.add(step.id);
    const event = { type: "step", phase: "start", id: step.id, kind: step.type, name: step.name, status: step.status || (step.ended_at ? "ok" : "running"), input: step.input, output: step.output, started_at: step.started_at || step.created_at, ended_at: step.ended_at, metadata: step.metadata };
    if (step.status === "running" || (!step.ended_at && !step.status)) event.status = "cancelled"; // a stored trace is over
    if (step.parent_id && steps.has(step.parent_id)) event.parent = step.parent_id;
    else if (step.parent_id && messages.has(step.parent_id)) event.message = step.parent_id;
    events.push(event);
  }
  for (const element of detail.elements || []) {
    let url = element.url || (element.content == null ? `/api/elements/${encodeURIComponent(element.id)}` : undefined);
    // <img src> cannot send a header: an anonymous visitor's scope goes in the query instead.
    if (url && scope && url.startsWith("/api/")) url += `${url.includes("?") ? "&" : "?"}session=${encodeURIComponent(scope)}`;
    events.push({ type: "element", id: element.id, kind: element.kind, name: element.name, message: element.message || undefined, url, mime: element.mime, size: element.size, display: element.display || "inline", content: element.content, metadata: element.metadata });
  }
  const feedback = new Map();
  for (const f of detail.feedback || []) feedback.set(f.message, { score: f.score, comment: f.comment || null });
  return { events, feedback, thread: detail.thread };
}
