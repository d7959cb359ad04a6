// The chat view: one conversation on screen, used by the full page and by the copilot widget.
//
// Data flow (one direction):
//   Connection (seq-ordered session events) -> Conversation.apply (data, marks items dirty)
//     -> one requestAnimationFrame -> flush(): re-render dirty items, move the list, announce
// However many events arrive in a frame (a 20,000-token stream, a 5,000-message replay), the
// DOM is touched once per frame, and only for the items that are on screen.
import { Connection } from "./connection.js";
import { Conversation } from "./store.js";
import { VirtualList } from "./virtual_list.js";
import { renderMarkdown, plainText, copyText } from "./markdown.js";
import { renderElement, renderElementBody } from "./elements.js";
import { renderStepTree, applyFilter } from "./steps.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";
import { Api } from "./api.js";
import { Attachments } from "./attachments.js";
import { SettingsPanel } from "./settings.js";

const NODE_CACHE_SIZE = 400; // rendered items kept while scrolled out of view
const ANNOUNCE_CHARS = 600; // what the live region reads of a reply
// A streaming reply's Markdown is re-rendered when at least this many times the render's
// expected cost (parse, sanitize, layout) has passed since the last one, so it takes at most
// ~1/9 of the main thread; in between, new tokens are appended as plain text, which costs
// little. A render expected to cost more than a frame's budget waits for stream_end: the
// reply streams on as text (a page that stalls for a 100 KB paragraph falls behind the stream).
const STREAM_MARKDOWN_SPACING = 8;
const STREAM_RENDER_BUDGET_MS = 8;
// At stream_end a reply whose render is expected to cost more than this (ms) shows its last
// tokens as text in the next frame and gets its final render (highlighted code) in the next.
const FINAL_RENDER_INLINE_MS = 4;
// Block elements a streamed tail may continue inside (the last paragraph, list item, code...).
const TAIL_HOSTS = new Set(["P", "UL", "OL", "LI", "BLOCKQUOTE", "DIV", "PRE", "CODE", "TABLE", "THEAD", "TBODY", "TR", "TD", "TH", "H1", "H2", "H3", "H4", "H5", "H6"]);

export class ChatView {
  /**
   * @param {HTMLElement} host   where the chat is built
   * @param {object} options
   * @param {string} options.base        the server's base URL (http[s]://host:port)
   * @param {Document|ShadowRoot} [options.root]  for activeElement inside a shadow root
   * @param {string} [options.title]
   * @param {string} [options.storageKey]  sessionStorage key to re-attach after a reload
   * @param {(thread: string) => Promise<{events: object[], feedback: Map}|null>} [options.loadHistory]
   * @param {HTMLElement[]} [options.headerExtras]
   * @param {() => string|null} [options.token]   bearer token (login screen)
   * @param {object|null} [options.uploads]   the server's upload limits (GET /api/ui)
   * @param {(thread: string, welcome: object) => void} [options.onThread]   the thread this view is in
   * @param {(ack: object) => void} [options.onAck]   a frame of ours was acknowledged
   * @param {(closing: object) => void} [options.onAuth]   the server refused our credentials
   */
  constructor(host, options) {
    this.host = host;
    this.options = options;
    this.base = options.base.replace(/\/$/, "");
    this.root = options.root || document;
    this.conv = new Conversation();
    this.view = { expanded: new Set(), filters: new Map() };
    this.cache = new Map();
    this.frame = 0;
    this.streams = new Map(); // key of a streaming message on screen -> its StreamBody
    this.features = { feedback: false, upload: true };
    this.api = new Api(this.base, options.token);
    this.feedback = new Map(); // message id -> {score, comment, open}
    this.edited = new Set(); // ids of user messages the user edited and resent
    this.states = [];
    this.build();
    this.list = new VirtualList(this.scroller, this.items, { render: (key, old) => this.renderItem(key, old) });
  }

  // -- layout ------------------------------------------------------------------------------

  build() {
    this.stateLabel = h("span", { class: "conn-state", role: "status", "data-state": "connecting" }, t("conn.connecting"));
    this.titleNode = h("h1", { class: "chat-title" }, this.options.title || t("app.title"));
    const header = h("header", { class: "chat-header" }, [this.titleNode, this.stateLabel, ...(this.options.headerExtras || [])]);
    this.items = h("div", { class: "chat-items", role: "feed", "aria-label": t("list.label"), "aria-busy": "false" });
    this.scroller = h("div", { class: "chat-scroller", tabindex: "0", role: "region", "aria-label": t("list.label") }, this.items);
    this.side = h("aside", { class: "side-panel", hidden: true, "aria-label": t("el.side", { name: "" }).trim() });
    const main = h("div", { class: "chat-main" }, [this.scroller, this.side]);
    this.toast = h("div", { class: "toast", role: "alert" });
    this.announcer = h("div", { class: "sr-only", "aria-live": "polite", "aria-atomic": "true" });
    this.askDock = h("div", { class: "ask-dock", hidden: true });
    this.input = h("textarea", { class: "composer-input", rows: "1", "aria-label": t("composer.label"), placeholder: t("composer.placeholder") });
    this.sendButton = h("button", { type: "submit", class: "send" }, t("composer.send"));
    this.stopButton = h("button", { type: "button", class: "stop", hidden: true }, t("composer.stop"));
    this.attachments = new Attachments({ api: this.api, session: () => this.session, limits: this.options.uploads, onError: (text) => this.showToast(text) });
    this.fileInput = h("input", { type: "file", multiple: true, class: "sr-only", tabindex: "-1", "aria-hidden": "true" });
    const limits = this.attachments.describeLimits();
    this.limitsNode = h("span", { class: "upload-limits", id: `limits-${uid()}` }, limits ? t("files.limits", { limits }) : "");
    this.attachButton = h("button", { type: "button", class: "attach icon", "aria-label": t("files.attach"), title: t("files.attach"), "aria-describedby": this.limitsNode.id }, "📎");
    this.composer = h("form", { class: "composer" }, [
      this.askDock,
      this.attachments.tray,
      h("div", { class: "composer-row" }, [this.attachButton, this.fileInput, this.input, this.stopButton, this.sendButton]),
      this.limitsNode,
    ]);
    this.settingsPanel = new SettingsPanel((values) => this.sendSettings(values));
    this.settingsButton = h("button", { type: "button", class: "settings-open", hidden: true, "aria-haspopup": "dialog" }, t("settings.open"));
    header.append(this.settingsButton);
    this.dropHint = h("div", { class: "drop-hint", hidden: true, "aria-hidden": "true" }, t("files.drop"));
    this.element = h("div", { class: "triolet-chat" }, [header, main, this.settingsPanel.element, this.toast, this.composer, this.announcer, this.dropHint]);
    this.host.append(this.element);

    this.composer.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.submit();
      } else if (e.key === "Escape" && this.conv.busy) {
        this.stop();
      }
    });
    this.input.addEventListener("input", () => this.autosize());
    this.stopButton.addEventListener("click", () => this.stop());
    this.bindFiles();
    this.settingsButton.addEventListener("click", () => this.settingsPanel.open(this.settingsButton));
    this.items.addEventListener("click", (e) => this.onListClick(e));
    this.side.addEventListener("click", (e) => {
      if (e.target.closest("[data-close-side]")) this.closeSide();
    });
    this.element.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && !this.side.hidden) this.closeSide();
    });
    this.items.addEventListener("input", (e) => {
      const filter = e.target.closest("[data-filter]");
      if (!filter) return;
      this.view.filters.set(filter.dataset.filter, filter.value);
      applyFilter(filter.closest(".step-tree"), filter.value);
    });
    // `toggle` does not bubble; a capturing listener still sees every <details> open/close.
    this.items.addEventListener(
      "toggle",
      (e) => {
        const id = e.target.dataset && e.target.dataset.step;
        if (!id) return;
        if (e.target.open) this.view.expanded.add(id);
        else this.view.expanded.delete(id);
        this.list.schedule();
      },
      true,
    );
  }

  autosize() {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight, 200)}px`;
  }

  // -- connection --------------------------------------------------------------------------

  connect({ session, thread } = {}) {
    if (this.connection) this.connection.close();
    const storageKey = this.options.storageKey;
    const remembered = storageKey ? sessionStorage.getItem(storageKey) : null;
    const wsUrl = this.base.replace(/^http/, "ws") + "/ws";
    this.connection = new Connection({
      url: wsUrl,
      session: session || (thread ? null : remembered),
      thread,
      onEvents: (events) => this.onEvents(events),
      onState: (state, detail) => this.setState(state, detail),
      onWelcome: (welcome, info) => this.onWelcome(welcome, info),
      onError: (error) => this.onError(error),
      // An ack means the frame is stored (ack_mode "stored"): the history list may change.
      onAck: (ack) => this.options.onAck && this.options.onAck(ack),
      token: this.options.token,
    });
    this.opening = thread || null;
    this.replayUntil = 0;
    this.connection.connect();
  }

  onWelcome(welcome, { gap, newSession }) {
    if (this.options.storageKey && welcome.session) sessionStorage.setItem(this.options.storageKey, welcome.session);
    this.session = welcome.session;
    this.thread = welcome.thread || null;
    // Events up to the server's seq at welcome time are a replay: show them, don't announce them.
    this.replayUntil = welcome.last_seq || 0;
    // A new session that continues the thread we just drew (openThread) keeps it on screen;
    // any other new session starts from an empty view.
    const continuing = this.opening && (this.thread || this.opening) === this.opening;
    if (!this.thread && continuing) this.thread = this.opening;
    if (newSession && this.conv.items.length && !continuing) {
      this.resetView();
    }
    if (this.options.onThread) this.options.onThread(this.thread || this.session, welcome);
    if (gap) {
      this.resetView();
      this.reloadHistory();
    } else if (this.thread && !this.threadLoaded && this.options.loadHistory) {
      // Re-attached (a reload) to a session that continues a thread: the thread's older
      // messages are not in the session's replay, so they come from the history API.
      this.threadLoaded = true;
      this.options.loadHistory(this.thread).then((stored) => stored && this.loadStored(stored, { prepend: true }));
    }
  }

  /** The scope of stored data for an anonymous visitor: the thread's first session. */
  get scope() {
    return this.thread || this.session;
  }

  loadStored(stored, options) {
    for (const [id, f] of stored.feedback) this.feedback.set(id, { score: f.score, comment: f.comment });
    this.loadEvents(stored.events, options);
  }

  async reloadHistory() {
    const stored = this.thread && this.options.loadHistory ? await this.options.loadHistory(this.thread) : null;
    if (stored) this.loadStored(stored);
    else {
      this.conv.notice(t("notice.gap"));
      this.schedule();
    }
  }

  resetView() {
    this.threadLoaded = false;
    this.feedback.clear();
    this.edited.clear();
    this.conv.reset();
    this.cache.clear();
    for (const stream of this.streams.values()) clearTimeout(stream.timer);
    this.streams.clear();
    this.list.heights.clear();
    this.schedule();
  }

  setState(state, detail) {
    if (state === "auth" && this.options.onAuth) this.options.onAuth(detail || {});
    this.states.push(state); // the history of states, for tests and debugging
    this.stateLabel.dataset.state = state;
    this.stateLabel.textContent = t(`conn.${state}`);
    this.element.dataset.connection = state;
  }

  onEvents(events) {
    const seqLive = this.connection ? this.connection.lastSeq : 0;
    const live = seqLive > this.replayUntil;
    let ended = false;
    for (const event of events) {
      this.conv.apply(event, { live: live || (event.seq || 0) > this.replayUntil });
      if (event.type === "stream_end") ended = true;
    }
    // A finished stream is drawn now, not at the next frame's start: its last tokens are in
    // the DOM (and laid out) before that frame, which then only has to paint them.
    if (ended) this.flushNow();
    else this.schedule();
  }

  /** Apply stored events (history, or a benchmark's synthetic thread) without announcing them. */
  loadEvents(events, { prepend = false } = {}) {
    if (prepend) this.conv.insertAt = 0;
    try {
      for (const event of events) this.conv.apply(event, { live: false });
    } finally {
      this.conv.insertAt = null;
    }
    this.schedule();
  }

  /** Continue a stored thread: its history first, then a new session that resumes it. */
  async openThread(thread) {
    if (this.connection) this.connection.close();
    this.resetView();
    this.attachments.clear();
    this.threadLoaded = true;
    this.thread = thread;
    const stored = this.options.loadHistory ? await this.options.loadHistory(thread) : null;
    if (stored) this.loadStored(stored);
    if (this.options.storageKey) sessionStorage.removeItem(this.options.storageKey);
    this.connect({ thread });
  }

  onError(error) {
    if (error.silent) return;
    if (error.ref) this.conv.failLocal(error.ref);
    this.showToast(t("error.generic", { message: error.message || error.code }));
    this.schedule();
  }

  showToast(text) {
    this.toast.textContent = text;
    this.toast.classList.add("visible");
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => {
      this.toast.classList.remove("visible");
      this.toast.textContent = "";
    }, 6000);
  }

  // -- user input --------------------------------------------------------------------------

  currentAsk() {
    let last = null;
    for (const id of this.conv.openAsks) last = this.conv.asks.get(id);
    return last;
  }

  async submit() {
    const text = this.input.value;
    const hasFiles = this.attachments.items.length > 0;
    if ((!text.trim() && !hasFiles) || !this.connection || this.submitting) return;
    const ask = this.currentAsk();
    if (ask && ask.ask.kind === "text") {
      this.connection.send({ type: "ask_reply", ask: ask.ask.id, content: text });
      this.answered(ask, text);
    } else if (hasFiles) {
      // Uploads may still be running: wait for them (the send button says so), then send the
      // text with the ids of the files that made it.
      this.submitting = true;
      this.sendButton.disabled = true;
      this.sendButton.textContent = t("files.waiting");
      try {
        const files = await this.attachments.settle();
        if (!files.length && !text.trim()) return;
        const id = this.connection.send({ type: "message", content: text, files: files.map((f) => f.id) });
        this.conv.addLocal(id, text, files);
        this.attachments.clear();
      } finally {
        this.submitting = false;
        this.sendButton.disabled = false;
        this.sendButton.textContent = t("composer.send");
      }
    } else {
      this.sendMessage(text);
    }
    this.input.value = "";
    this.autosize();
    this.list.scrollToBottom();
    this.schedule();
  }

  sendMessage(text) {
    const id = this.connection.send({ type: "message", content: text });
    this.conv.addLocal(id, text);
    return id;
  }

  sendSettings(values) {
    this.connection.send({ type: "settings", values });
    this.conv.settings = { ...(this.conv.settings || {}), values };
    this.settingsPanel.show(this.conv.settings);
  }

  /** The attach button, drag-and-drop anywhere on the chat, and paste into the composer. */
  bindFiles() {
    this.attachButton.addEventListener("click", () => this.fileInput.click());
    this.fileInput.addEventListener("change", () => {
      this.attachments.add(this.fileInput.files);
      this.fileInput.value = ""; // the same file may be picked again
    });
    this.composer.addEventListener("click", (e) => {
      const remove = e.target.closest("[data-remove-attachment]");
      if (remove) this.attachments.remove(Number(remove.dataset.removeAttachment));
    });
    const hasFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes("Files");
    let depth = 0; // dragenter/dragleave fire for every child: count them
    this.element.addEventListener("dragenter", (e) => {
      if (!hasFiles(e) || !this.features.upload) return;
      depth += 1;
      this.dropHint.hidden = false;
    });
    this.element.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (!depth) this.dropHint.hidden = true;
    });
    this.element.addEventListener("dragover", (e) => {
      if (hasFiles(e) && this.features.upload) e.preventDefault(); // allows the drop
    });
    this.element.addEventListener("drop", (e) => {
      depth = 0;
      this.dropHint.hidden = true;
      if (!hasFiles(e) || !this.features.upload) return;
      e.preventDefault();
      this.attachments.add(e.dataTransfer.files);
    });
    this.input.addEventListener("paste", (e) => {
      const files = e.clipboardData ? [...e.clipboardData.files] : [];
      if (!files.length || !this.features.upload) return; // plain text pastes as usual
      e.preventDefault();
      this.attachments.add(files);
    });
  }

  /** Show the user's answer under the prompt (the server does not echo ask replies). */
  answered(askItem, text) {
    askItem.answer = text;
    this.conv.touch(askItem.key);
    this.schedule();
  }

  stop() {
    if (this.connection) this.connection.stop();
  }

  sendAction(action) {
    return this.connection.send({ type: "action", action: action.id, name: action.name, payload: action.payload || {} });
  }

  onListClick(event) {
    const target = event.target;
    const copy = target.closest("[data-copy]");
    if (copy) {
      const code = copy.parentElement.querySelector("pre");
      copyText(code ? code.innerText : "").then((ok) => {
        if (ok) copy.textContent = t("msg.copied");
        setTimeout(() => (copy.textContent = t("msg.copy")), 1500);
      });
      return;
    }
    const button = target.closest("[data-action]");
    if (button && !button.disabled) {
      const item = this.conv.byKey.get(button.dataset.item);
      const action = item && item.actions[Number(button.dataset.action)];
      if (action) {
        // Debounce: one press sends one frame; the button frees up once the server answered.
        button.disabled = true;
        button.setAttribute("aria-busy", "true");
        this.sendAction(action);
        setTimeout(() => {
          button.disabled = false;
          button.removeAttribute("aria-busy");
        }, 1000);
      }
      return;
    }
    const side = target.closest("[data-side]");
    if (side) {
      this.openSide(side.dataset.side);
      return;
    }
    const feedback = target.closest("[data-feedback]");
    if (feedback) {
      this.sendFeedback(feedback.dataset.message, Number(feedback.dataset.feedback));
      return;
    }
    const comment = target.closest("[data-feedback-send]");
    if (comment) {
      const box = comment.closest(".feedback-comment").querySelector("textarea");
      this.sendFeedbackComment(comment.dataset.feedbackSend, box.value);
      return;
    }
    const edit = target.closest("[data-edit]");
    if (edit) {
      this.editing = { key: edit.dataset.edit, text: this.conv.byKey.get(edit.dataset.edit).content };
      this.refreshKey(edit.dataset.edit);
      return;
    }
    const cancel = target.closest("[data-edit-cancel]");
    if (cancel) {
      const key = this.editing && this.editing.key;
      this.editing = null;
      if (key) this.refreshKey(key);
      return;
    }
    const resend = target.closest("[data-edit-resend]");
    if (resend) this.resend(resend.closest("form").querySelector("textarea").value);
  }

  /**
   * Edit and resend: the edited text goes out as a new message (the session sees an ordinary
   * message; stored history stays append-only), and the original is marked edited on screen.
   */
  resend(text) {
    const key = this.editing && this.editing.key;
    this.editing = null;
    if (!key) return;
    const item = this.conv.byKey.get(key);
    if (item && text.trim() && text !== item.content) {
      this.edited.add(item.id);
      this.sendMessage(text);
      this.list.scrollToBottom();
    }
    this.refreshKey(key);
    this.schedule();
    this.input.focus();
  }

  openSide(elementId) {
    const element = this.conv.elementsById.get(elementId);
    if (!element) return;
    const close = h("button", { type: "button", class: "side-close", "data-close-side": "" }, t("el.close"));
    this.side.replaceChildren(h("h2", { class: "side-title" }, element.name || element.kind), close, renderElementBody(element, this.base));
    this.side.hidden = false;
    close.focus();
  }

  closeSide() {
    this.side.hidden = true;
    this.side.replaceChildren();
    this.input.focus();
  }

  /** Thumbs: pressing the pressed one again clears it (score 0); a new score opens the comment box. */
  async sendFeedback(messageId, value) {
    const previous = this.feedback.get(messageId) || { score: 0, comment: null };
    const score = previous.score === value ? 0 : value;
    this.feedback.set(messageId, { score, comment: previous.comment, open: score !== 0 });
    this.refreshKey(`m:${messageId}`);
    if (!(await this.postFeedback(messageId, { score, comment: previous.comment }))) {
      this.feedback.set(messageId, previous);
      this.refreshKey(`m:${messageId}`);
    } else if (score !== 0) {
      queueMicrotask(() => {
        const box = this.items.querySelector(`[data-feedback-comment="${CSS.escape(messageId)}"]`);
        if (box) box.focus();
      });
    }
  }

  async sendFeedbackComment(messageId, comment) {
    const current = this.feedback.get(messageId) || { score: 0 };
    const text = comment.trim() || null;
    if (await this.postFeedback(messageId, { score: current.score, comment: text })) {
      this.feedback.set(messageId, { score: current.score, comment: text, open: false, sent: true });
      this.refreshKey(`m:${messageId}`);
      this.announcer.textContent = t("feedback.thanks");
    }
  }

  async postFeedback(messageId, body) {
    try {
      await this.api.json(`/api/messages/${encodeURIComponent(messageId)}/feedback`, { method: "POST", body, scope: this.scope });
      return true;
    } catch (err) {
      this.showToast(t("error.generic", { message: err.message }));
      return false;
    }
  }

  refreshKey(key) {
    this.cache.delete(key);
    this.list.refresh(key);
  }

  // -- rendering ---------------------------------------------------------------------------

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.flush();
    });
  }

  flushNow() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.flush();
  }

  flush() {
    const { dirty, structure, announce } = this.conv.takeChanges();
    for (const key of dirty) {
      const item = this.conv.byKey.get(key);
      const stream = this.streams.get(key);
      if (item && item.streaming && this.list.nodes.has(key)) {
        // Only the body of a streaming message changes: append the new text, re-render the
        // Markdown now and then (updateStreaming), keep the rest of the node.
        this.updateStreaming(key, item);
        continue;
      }
      if (stream) {
        this.streams.delete(key);
        clearTimeout(stream.timer);
        if (item && !item.finalShown && stream.body.isConnected && stream.expectedCost(item.content.length) > FINAL_RENDER_INLINE_MS) {
          // The stream ended and its full render is expensive: its last tokens go on screen
          // in the next frame, the final render (Markdown, highlighted code) after that paint.
          stream.appendTail(item.content);
          item.finalShown = true;
          this.streams.set(key, stream);
          requestAnimationFrame(() =>
            setTimeout(() => {
              this.conv.touch(key);
              this.schedule();
            }),
          );
          continue;
        }
      }
      if (item) item.finalShown = false;
      this.cache.delete(key);
      this.list.refresh(key);
    }
    if (structure) this.list.setKeys(this.conv.items.map((item) => item.key));
    // Lay the list out in this frame (a streamed reply stays scrolled into view as it grows).
    this.list.update();
    if (this.conv.settings !== this.settingsShown) {
      // A `settings` event arrived (or the user saved): offer the panel with the new values.
      this.settingsShown = this.conv.settings;
      this.settingsButton.hidden = !this.conv.settings;
      if (this.conv.settings) this.settingsPanel.show(this.conv.settings);
    }
    this.items.setAttribute("aria-busy", String(this.conv.busy));
    this.stopButton.hidden = !this.conv.busy;
    this.renderAskDock();
    if (announce.length) {
      const last = announce[announce.length - 1];
      // The start of the reply is what is read: Markdown of a bounded prefix, not of the whole.
      const text = plainText(last.text.slice(0, ANNOUNCE_CHARS * 4)).slice(0, ANNOUNCE_CHARS);
      this.announcer.textContent = t("announce.reply", { author: last.author || t("role.assistant"), text });
    }
  }

  /**
   * A streaming message on screen: Markdown for what was there at its last render, plain text
   * appended since. The Markdown is redone when enough time has passed (STREAM_MARKDOWN_SPACING
   * times its cost), so a 20,000-token reply costs a text append per frame, not a full parse.
   */
  updateStreaming(key, item) {
    const node = this.list.nodes.get(key);
    const body = node && node.querySelector(".msg-body");
    if (!body) {
      this.refreshKey(key);
      return;
    }
    let stream = this.streams.get(key);
    if (!stream || stream.body !== body) {
      stream = new StreamBody(body);
      this.streams.set(key, stream);
    }
    const wait = stream.nextRenderIn(item.content.length);
    if (wait <= 0) stream.render(item.content);
    else {
      stream.appendTail(item.content);
      // Tokens may stop for a while (a slow model): the tail still gets its Markdown in time.
      if (!stream.timer && wait !== Infinity) {
        stream.timer = setTimeout(() => {
          stream.timer = 0;
          this.conv.touch(key);
          this.schedule();
        }, wait);
      }
    }
    this.cache.delete(key); // the node was changed in place; rebuild it if it is ever unmounted
  }

  renderItem(key, old) {
    const cached = this.cache.get(key);
    if (cached && cached !== old) return cached;
    const item = this.conv.byKey.get(key);
    // Keep focus (and the caret) in a control that is rebuilt while the user is in it.
    const active = old ? this.root.activeElement : null;
    const focusKey = active && old.contains(active) ? active.dataset.focusKey : null;
    const caret = focusKey && "selectionStart" in active ? [active.selectionStart, active.selectionEnd] : null;
    const node = item ? this.build_(item) : h("div", {});
    if (focusKey) {
      const again = node.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`);
      if (again) {
        queueMicrotask(() => {
          again.focus();
          if (caret) again.setSelectionRange(...caret);
        });
      }
    }
    this.cache.set(key, node);
    if (this.cache.size > NODE_CACHE_SIZE) this.cache.delete(this.cache.keys().next().value);
    return node;
  }

  build_(item) {
    const index = this.conv.items.indexOf(item);
    const position = { "aria-posinset": index + 1, "aria-setsize": this.conv.items.length };
    switch (item.type) {
      case "message":
        return this.renderMessage(item, position);
      case "trace":
        return h("article", { class: "trace", "data-key": item.key, "aria-label": t("steps.title"), ...position }, renderStepTree([item.root], this.view, item.key));
      case "ask":
        return this.renderAskItem(item, position);
      case "element":
        return h("article", { class: "loose-element", "data-key": item.key, "aria-label": item.element.name || item.element.kind, ...position }, renderElement(item.element, this.base));
      case "actions":
        return h("article", { class: "loose-actions", "data-key": item.key, "aria-label": t("role.assistant"), ...position }, this.renderActions(item));
      case "notice":
        return h("article", { class: "notice", "data-key": item.key, "aria-label": item.text, ...position }, item.text);
      default:
        return h("div", {});
    }
  }

  renderMessage(item, position) {
    const role = item.role || "assistant";
    const author = item.author || t(`role.${role}`);
    let body;
    if (item.streaming) {
      body = h("div", { class: "msg-body markdown" });
      const stream = new StreamBody(body);
      stream.render(item.content);
      this.streams.set(item.key, stream);
    } else {
      body = h("div", { class: "msg-body markdown" }, renderMarkdown(item.content));
    }
    const edited = this.edited.has(item.id);
    const state = item.pending ? t("msg.sending") : item.failed ? t("error.generic", { message: "" }) : item.streaming ? t("msg.streaming") : edited ? t("msg.edited") : null;
    const editing = this.editing && this.editing.key === item.key;
    const canEdit = role === "user" && !item.pending && !editing && this.connection;
    const children = [
      h("div", { class: "msg-author" }, [
        author,
        state ? h("span", { class: "msg-state" }, state) : null,
        canEdit ? h("button", { type: "button", class: "msg-edit icon", "data-edit": item.key, "aria-label": t("msg.edit"), title: t("msg.edit") }, "✎") : null,
      ]),
      editing ? this.renderEditor(item) : body,
      item.files && item.files.length ? h("ul", { class: "msg-files", "aria-label": t("files.attached") }, item.files.map((f) => h("li", { class: "el-chip" }, f.name))) : null,
      item.elements.length ? h("div", { class: "msg-elements" }, item.elements.map((el) => renderElement(el, this.base))) : null,
      item.steps.length ? renderStepTree(item.steps, this.view, item.key) : null,
      item.actions.length ? this.renderActions(item) : null,
      this.features.feedback && role === "assistant" && !item.streaming ? this.renderFeedback(item) : null,
    ];
    return h("article", { class: `msg msg-${role}${item.pending ? " msg-pending" : ""}${item.failed ? " msg-failed" : ""}${edited ? " msg-edited" : ""}`, "data-key": item.key, "aria-label": author, ...position }, children);
  }

  renderActions(item) {
    return h(
      "div",
      { class: "msg-actions" },
      item.actions.map((action, i) =>
        h("button", { type: "button", class: "action", "data-item": item.key, "data-action": i, title: action.tooltip || null }, action.label || action.name),
      ),
    );
  }

  renderFeedback(item) {
    const state = this.feedback.get(item.id) || { score: 0 };
    const button = (v, label, glyph) =>
      h("button", { type: "button", class: "feedback", "data-feedback": v, "data-message": item.id, "aria-pressed": String(state.score === v), "aria-label": label, title: label }, glyph);
    const row = [button(1, t("msg.feedback.up"), "👍"), button(-1, t("msg.feedback.down"), "👎")];
    if (state.comment && !state.open) row.push(h("span", { class: "feedback-note" }, t("feedback.commented", { comment: state.comment })));
    const parts = [h("div", { class: "feedback-row" }, row)];
    if (state.open) {
      const id = `fb-${item.id}`;
      parts.push(
        h("div", { class: "feedback-comment" }, [
          h("label", { for: id }, t("feedback.comment")),
          h("textarea", { id, rows: "2", maxlength: "2000", "data-feedback-comment": item.id, "data-focus-key": id }, state.comment || ""),
          h("button", { type: "button", "data-feedback-send": item.id }, t("feedback.send")),
        ]),
      );
    }
    return h("div", { class: "msg-feedback" }, parts);
  }

  renderEditor(item) {
    const id = `edit-${item.id}`;
    const box = h("textarea", { id, rows: "3", class: "edit-box", "data-focus-key": id, "aria-label": t("msg.edit") }, this.editing.text);
    queueMicrotask(() => box.isConnected && this.root.activeElement !== box && box.focus());
    box.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.stopPropagation();
        this.editing = null;
        this.refreshKey(item.key);
      } else if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.resend(box.value);
      }
    });
    box.addEventListener("input", () => (this.editing.text = box.value));
    return h("form", { class: "msg-editor", "aria-label": t("msg.edit") }, [
      box,
      h("div", { class: "editor-buttons" }, [h("button", { type: "button", class: "primary", "data-edit-resend": "" }, t("msg.resend")), h("button", { type: "button", "data-edit-cancel": "" }, t("settings.cancel"))]),
    ]);
  }

  renderAskItem(item, position) {
    const ended = item.ended ? t(item.ended === "timeout" ? "ask.timeout" : item.ended === "cancelled" ? "ask.cancelled" : "ask.answered") : null;
    return h("article", { class: `ask-item${item.ended ? " ask-ended" : ""}`, "data-key": item.key, "aria-label": t("ask.text"), ...position }, [
      h("div", { class: "msg-author" }, [t("ask.text"), ended ? h("span", { class: "msg-state" }, ended) : null]),
      h("div", { class: "msg-body markdown" }, renderMarkdown(item.ask.prompt || "", { highlight: false })),
      item.answer != null ? h("div", { class: "ask-answer" }, [h("span", { class: "msg-author" }, `${t("role.user")}: `), item.answer]) : null,
    ]);
  }

  /** The open ask (if any) takes over the composer: its prompt, and buttons or a file picker. */
  renderAskDock() {
    const ask = this.currentAsk();
    const id = ask ? ask.ask.id : null;
    if (id === this.dockFor) return;
    this.dockFor = id;
    const hadFocus = this.composer.contains(this.root.activeElement);
    if (!ask) {
      this.askDock.hidden = true;
      this.askDock.replaceChildren();
      this.sendButton.textContent = t("composer.send");
      this.input.placeholder = t("composer.placeholder");
      return;
    }
    const spec = ask.ask;
    const controls = [h("div", { class: "ask-prompt", id: `ask-${spec.id}` }, spec.prompt || "")];
    if (spec.kind === "action") {
      const row = h("div", { class: "ask-actions", role: "group", "aria-labelledby": `ask-${spec.id}` });
      for (const action of spec.actions || []) {
        const button = h("button", { type: "button", class: "action" }, action.label || action.name);
        button.addEventListener("click", () => {
          for (const b of row.querySelectorAll("button")) b.disabled = true;
          this.connection.send({ type: "ask_reply", ask: spec.id, action: action.id, payload: action.payload || {} });
          this.answered(ask, action.label || action.name);
        });
        row.append(button);
      }
      controls.push(row);
    } else if (spec.kind === "file") {
      controls.push(this.renderFilePicker(spec));
    }
    this.askDock.replaceChildren(...controls);
    this.askDock.hidden = false;
    this.sendButton.textContent = spec.kind === "text" ? t("composer.answer") : t("composer.send");
    this.input.placeholder = spec.kind === "text" ? spec.prompt || "" : t("composer.placeholder");
    // Move focus where the answer goes, if the user was typing (never steal it from elsewhere).
    if (hadFocus || this.root.activeElement === document.body || !this.root.activeElement) {
      const first = spec.kind === "text" ? this.input : this.askDock.querySelector("button, input");
      if (first) first.focus();
    }
  }

  /** A file ask uses the composer's upload path (limits, progress), with the ask's own bounds. */
  renderFilePicker(spec) {
    const input = h("input", { type: "file", "aria-label": t("ask.file"), accept: (spec.accept || []).join(",") || null, multiple: (spec.max_files || 1) > 1 });
    const tray = new Attachments({ api: this.api, session: () => this.session, limits: this.options.uploads, onError: (text) => this.showToast(text) });
    const send = h("button", { type: "button", class: "primary", disabled: true }, t("composer.send"));
    input.addEventListener("change", () => {
      tray.clear();
      tray.add([...input.files], { maxFiles: spec.max_files || 1, maxBytes: spec.max_bytes, accept: spec.accept });
      send.disabled = tray.items.length === 0;
    });
    tray.tray.addEventListener("click", (e) => {
      const remove = e.target.closest("[data-remove-attachment]");
      if (remove) tray.remove(Number(remove.dataset.removeAttachment));
      send.disabled = tray.items.length === 0;
    });
    send.addEventListener("click", async () => {
      send.disabled = true;
      const files = await tray.settle();
      if (!files.length) return;
      this.connection.send({ type: "ask_reply", ask: spec.id, files: files.map((f) => f.id) });
      this.answered(this.conv.asks.get(spec.id), files.map((f) => f.name).join(", "));
    });
    return h("div", { class: "ask-file" }, [input, tray.tray, send]);
  }

  destroy() {
    if (this.connection) this.connection.close();
    this.element.remove();
  }
}

/** The body of a streaming message: rendered Markdown plus a plain-text tail (see updateStreaming). */
class StreamBody {
  constructor(body) {
    this.body = body;
    this.shown = 0; // characters of the content on screen
    this.cost = 0; // ms the last Markdown render took
    this.renderedAt = 0;
    this.tail = null; // the Text node new tokens are appended to (made by render)
    this.timer = 0;
  }

  /** What a render of `length` characters should cost (ms), from the last one's cost. */
  expectedCost(length) {
    return (this.cost * Math.max(length, 1000)) / Math.max(this.shown, 1000);
  }

  /** ms until the Markdown may be rendered again (<= 0: now; Infinity: at stream_end). */
  nextRenderIn(length) {
    const expected = this.expectedCost(length);
    if (expected > STREAM_RENDER_BUDGET_MS) return Infinity;
    return this.renderedAt + expected * STREAM_MARKDOWN_SPACING - performance.now();
  }

  render(content) {
    const started = performance.now();
    this.body.replaceChildren(renderMarkdown(content, { highlight: false }));
    // The tail continues the last block (its paragraph, list item or code), as the next
    // Markdown render will show it. It is in place (empty) before the layout below: appending
    // to a text node that is already laid out is the browser's cheap case.
    this.tail = document.createTextNode("");
    const span = document.createElement("span");
    span.className = "stream-tail";
    span.append(this.tail);
    tailHost(this.body).append(span);
    // The cost counts the layout of the new content too (for a long reply it is most of the
    // cost). Laying out here is no extra work: the list measures the node in this frame anyway.
    void this.body.offsetHeight;
    this.renderedAt = performance.now();
    this.cost = this.renderedAt - started;
    this.shown = content.length;
    clearTimeout(this.timer);
    this.timer = 0;
  }

  appendTail(content) {
    if (content.length <= this.shown) return;
    this.tail.appendData(content.slice(this.shown));
    this.shown = content.length;
  }
}

/** The innermost last block element of rendered Markdown (skipping whitespace between blocks). */
function tailHost(body) {
  let host = body;
  for (;;) {
    let last = host.lastChild;
    while (last && last.nodeType === Node.TEXT_NODE && !last.data.trim()) last = last.previousSibling;
    if (!last || last.nodeType !== Node.ELEMENT_NODE || !TAIL_HOSTS.has(last.tagName)) return host;
    host = last;
  }
}

let uidCounter = 0;
/** Ids unique in the page (a page may hold several chats: the widget, tests). */
function uid() {
  uidCounter += 1;
  return uidCounter;
}
