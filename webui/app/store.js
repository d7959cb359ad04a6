// The conversation as data: session events in, a list of items plus "what changed" out.
//
// No DOM here. Applying an event is cheap (a map lookup, a string append), and it only records
// which list items became dirty; the view renders those once per animation frame. That split
// is what lets a 20,000-token stream or a 5,000-message thread arrive without the page doing
// 20,000 or 5,000 DOM updates.
//
// List items (what the virtualized list shows), by key:
//   m:<id>  a message, with its attached elements, actions and steps
//   l:<id>  the user's own message, shown at once, until the server echoes it
//   t:<id>  a trace: a root step (and its subtree) not attached to a shown message
//   q:<id>  an ask prompt
//   e:<id>  an element not attached to a message;  a:<id> actions for an unknown message
//   n:<k>   a notice (gap in history, ...)

export class Conversation {
  constructor() {
    this.reset();
  }

  reset() {
    this.items = []; // ordered list items: {key, type, ...}
    this.byKey = new Map();
    this.messages = new Map(); // message id -> message item
    this.steps = new Map(); // step id -> step
    this.asks = new Map(); // ask id -> ask item
    this.elementsById = new Map(); // element id -> element event (for the side panel)
    this.openAsks = new Set(); // ids of asks not ended
    this.streaming = new Set(); // ids of messages still streaming
    this.running = new Set(); // ids of steps still running
    this.local = new Map(); // client id -> local item (until the echo)
    this.dirty = new Set();
    this.structure = true; // items were added, removed or reordered
    this.announce = []; // finished assistant replies for the live region
    this.noticeCount = 0;
    this.insertAt = null;
  }

  get busy() {
    return this.streaming.size > 0 || this.running.size > 0;
  }

  /** Take the accumulated changes (the view calls this once per frame). */
  takeChanges() {
    const changes = { dirty: this.dirty, structure: this.structure, announce: this.announce };
    this.dirty = new Set();
    this.structure = false;
    this.announce = [];
    return changes;
  }

  add(item) {
    // History loaded after live events (a reload of a continued thread) goes before them.
    if (this.insertAt != null) this.items.splice(this.insertAt++, 0, item);
    else this.items.push(item);
    this.byKey.set(item.key, item);
    this.structure = true;
    return item;
  }

  remove(key) {
    const item = this.byKey.get(key);
    if (!item) return;
    this.byKey.delete(key);
    const at = this.items.lastIndexOf(item);
    if (at >= 0) this.items.splice(at, 1);
    this.structure = true;
  }

  touch(key) {
    if (key) this.dirty.add(key);
  }

  notice(text) {
    this.noticeCount += 1;
    this.add({ key: `n:${this.noticeCount}`, type: "notice", text });
  }

  /** The user's message, shown before the server has it (replaced by the echo). */
  addLocal(clientId, content, files = []) {
    const item = this.add({
      key: `l:${clientId}`,
      type: "message",
      id: clientId,
      role: "user",
      content,
      pending: true,
      files,
      elements: [],
      actions: [],
      steps: [],
      version: 0,
    });
    this.local.set(clientId, item);
  }

  /** A local message the server refused: keep it visible, marked failed. */
  failLocal(clientId) {
    const item = this.local.get(clientId);
    if (!item) return;
    item.failed = true;
    item.pending = false;
    this.touch(item.key);
  }

  apply(event, { live = true } = {}) {
    const handler = HANDLERS[event.type];
    if (handler) handler(this, event, live); // unknown types are ignored (PROTOCOL.md section 5)
  }
}

function messageItem(conv, id) {
  return conv.messages.get(id);
}

/** The list item a step's subtree is drawn in (its root's message, or its own trace). */
function stepItemKey(conv, step) {
  let root = step;
  const seen = new Set();
  while (root.parent && conv.steps.has(root.parent) && !seen.has(root.parent)) {
    seen.add(root.parent);
    root = conv.steps.get(root.parent);
  }
  return root.itemKey;
}

const HANDLERS = {
  message(conv, ev, live) {
    let files = null;
    if (ev.role === "user" && ev.client_id && conv.local.has(ev.client_id)) {
      files = conv.local.get(ev.client_id).files;
      conv.remove(`l:${ev.client_id}`);
      conv.local.delete(ev.client_id);
    }
    const existing = conv.messages.get(ev.id);
    if (existing) {
      // Seen before (history, then a replay): refresh its content.
      Object.assign(existing, { content: ev.content ?? existing.content });
      existing.version += 1;
      conv.touch(existing.key);
      return;
    }
    const item = conv.add({
      key: `m:${ev.id}`,
      type: "message",
      id: ev.id,
      role: ev.role,
      content: ev.content || "",
      author: ev.author,
      streaming: !!ev.streaming,
      createdAt: ev.created_at,
      metadata: ev.metadata,
      files,
      elements: [],
      actions: [],
      steps: [],
      version: 0,
    });
    conv.messages.set(ev.id, item);
    if (item.streaming) conv.streaming.add(ev.id);
    else if (live && ev.role === "assistant" && item.content) {
      conv.announce.push({ author: ev.author, text: item.content });
    }
  },

  token(conv, ev) {
    const item = messageItem(conv, ev.message);
    if (!item) return;
    item.content += ev.text;
    item.version += 1;
    conv.touch(item.key);
  },

  stream_end(conv, ev, live) {
    const item = messageItem(conv, ev.message);
    if (!item) return;
    item.streaming = false;
    item.version += 1;
    conv.streaming.delete(ev.message);
    conv.touch(item.key);
    if (live && item.role === "assistant") conv.announce.push({ author: item.author, text: item.content });
  },

  message_update(conv, ev) {
    const item = messageItem(conv, ev.message);
    if (!item) return;
    if (typeof ev.content === "string") item.content = ev.content;
    if (ev.metadata) item.metadata = ev.metadata;
    item.version += 1;
    conv.touch(item.key);
  },

  message_delete(conv, ev) {
    const item = messageItem(conv, ev.message);
    if (!item) return;
    conv.messages.delete(ev.message);
    conv.streaming.delete(ev.message);
    conv.remove(item.key);
  },

  step(conv, ev) {
    let step = conv.steps.get(ev.id);
    if (!step) {
      step = { id: ev.id, children: [], status: "running" };
      conv.steps.set(ev.id, step);
      const parent = ev.parent && conv.steps.get(ev.parent);
      if (parent) {
        parent.children.push(step);
        step.parent = ev.parent;
        step.itemKey = parent.itemKey;
      } else if (ev.message && conv.messages.has(ev.message)) {
        const msg = conv.messages.get(ev.message);
        msg.steps.push(step);
        step.itemKey = msg.key;
      } else {
        const item = conv.add({ key: `t:${ev.id}`, type: "trace", root: step });
        step.itemKey = item.key;
      }
    }
    for (const field of ["name", "kind", "status", "input", "output", "metadata", "message"]) {
      if (field in ev) step[field] = ev[field];
    }
    if ("started_at" in ev) step.startedAt = ev.started_at;
    if ("ended_at" in ev) step.endedAt = ev.ended_at;
    if (ev.phase === "end" && (!step.status || step.status === "running")) step.status = "ok";
    if (step.status === "running") conv.running.add(step.id);
    else conv.running.delete(step.id);
    conv.touch(stepItemKey(conv, step));
  },

  element(conv, ev) {
    conv.elementsById.set(ev.id, ev);
    const msg = ev.message && conv.messages.get(ev.message);
    if (msg) {
      const at = msg.elements.findIndex((e) => e.id === ev.id);
      if (at >= 0) msg.elements[at] = ev;
      else msg.elements.push(ev);
      msg.version += 1;
      conv.touch(msg.key);
    } else if (!conv.byKey.has(`e:${ev.id}`)) {
      conv.add({ key: `e:${ev.id}`, type: "element", element: ev });
    }
  },

  actions(conv, ev) {
    const msg = ev.message && conv.messages.get(ev.message);
    if (msg) {
      msg.actions = ev.actions || [];
      msg.version += 1;
      conv.touch(msg.key);
      return;
    }
    const key = `a:${ev.message || ev.seq}`;
    const item = conv.byKey.get(key);
    if (item) {
      item.actions = ev.actions || [];
      conv.touch(key);
    } else {
      conv.add({ key, type: "actions", actions: ev.actions || [] });
    }
  },

  ask(conv, ev) {
    if (conv.asks.has(ev.id)) return;
    const item = conv.add({ key: `q:${ev.id}`, type: "ask", ask: ev, ended: null });
    conv.asks.set(ev.id, item);
    conv.openAsks.add(ev.id);
  },

  ask_end(conv, ev) {
    const item = conv.asks.get(ev.id);
    conv.openAsks.delete(ev.id);
    if (!item) return;
    item.ended = ev.reason || "answered";
    conv.touch(item.key);
  },

  settings(conv, ev) {
    conv.settings = { values: ev.values, schema: ev.schema };
  },
};
