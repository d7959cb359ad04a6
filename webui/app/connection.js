// The WebSocket client for protocol v1 (docs/PROTOCOL.md), without any DOM.
//
// What it guarantees to the UI: every session event is delivered exactly once and in seq
// order, across dropped connections and page reloads. It does this with the protocol's own
// tools: it tracks `lastSeq` (the highest seq handed to the UI), drops repeats, asks for
// `resume` on a hole, and reconnects with `hello.session` + `hello.last_seq`. Frames the user
// sent are kept until the server acks them and are resent with the same id after a reconnect
// (the server dedups by id), so nothing is lost or done twice.

const PROTOCOL_VERSION = 1;
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 8000;

// Connection-level events: never carry seq, never replayed.
const CONNECTION_EVENTS = new Set(["welcome", "ack", "error", "ping", "pong", "closing"]);

export class Connection {
  /**
   * @param {object} options
   * @param {string} options.url        ws:// or wss:// URL of /ws
   * @param {(events: object[]) => void} options.onEvents  session events, in order, deduplicated
   * @param {(state: string, detail?: object) => void} options.onState  connecting | connected | reconnecting | offline | ended | auth
   * @param {(welcome: object) => void} [options.onWelcome]
   * @param {(error: object) => void} [options.onError]
   * @param {(ack: object) => void} [options.onAck]
   * @param {string} [options.session]  a session to re-attach to (page reload)
   * @param {string} [options.thread]   a stored thread to continue
   * @param {() => string|null} [options.token]
   */
  constructor(options) {
    this.options = options;
    this.url = options.url;
    this.session = options.session || null;
    this.thread = options.thread || null;
    this.lastSeq = 0;
    this.socket = null;
    this.state = "idle";
    this.pending = new Map(); // client id -> frame, until acked or refused
    this.counter = 0;
    // Unique per page load: ids must never repeat within a session, even after a reload.
    this.idPrefix = "c-" + (crypto.randomUUID ? crypto.randomUUID().slice(0, 8) : Math.random().toString(36).slice(2, 10));
    this.backoff = BACKOFF_MIN_MS;
    this.resuming = false;
    this.greeted = false;
    this.lastHeard = 0;
    this.limits = null;
    this.stopped = false;
    this.retryTimer = null;
    this.watchdog = null;
    this.onOnline = () => this.reconnectNow();
    window.addEventListener("online", this.onOnline);
  }

  nextId() {
    this.counter += 1;
    return `${this.idPrefix}-${this.counter}`;
  }

  connect() {
    this.stopped = false;
    this.setState(this.greeted ? "reconnecting" : "connecting");
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch (err) {
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    this.greeted = false;
    socket.onopen = () => {
      const hello = { type: "hello", version: PROTOCOL_VERSION, encoding: "json" };
      if (this.session) {
        hello.session = this.session;
        hello.last_seq = this.lastSeq;
      } else if (this.thread) {
        hello.thread = this.thread;
      }
      const token = this.options.token && this.options.token();
      if (token) hello.token = token;
      this.lastHeard = Date.now();
      socket.send(JSON.stringify(hello));
    };
    socket.onmessage = (msg) => {
      if (socket !== this.socket) return;
      this.lastHeard = Date.now();
      let data;
      try {
        data = JSON.parse(msg.data);
      } catch {
        return; // the server only sends JSON on this encoding; ignore garbage rather than die
      }
      this.receive(Array.isArray(data) ? data : [data]);
    };
    socket.onclose = () => {
      if (socket !== this.socket) return;
      this.socket = null;
      clearInterval(this.watchdog);
      if (!this.stopped) this.scheduleReconnect();
    };
    socket.onerror = () => {}; // onclose follows and does the work
  }

  /** Process one frame's events: connection events here, session events in seq order. */
  receive(events) {
    const delivered = [];
    for (const event of events) {
      if (!event || typeof event.type !== "string") continue;
      if (CONNECTION_EVENTS.has(event.type)) {
        this.connectionEvent(event);
        continue;
      }
      if (typeof event.seq !== "number") {
        delivered.push(event); // not a sequenced event (future types): pass through
        continue;
      }
      const first = typeof event.first_seq === "number" ? event.first_seq : event.seq;
      if (first <= this.lastSeq) continue; // a repeat (replay overlap): already shown
      if (first > this.lastSeq + 1) {
        // A hole: something was missed. Ask once for the rest; drop events until it arrives.
        if (!this.resuming && this.socket && this.session) {
          this.resuming = true;
          this.sendRaw({ type: "resume", session: this.session, last_seq: this.lastSeq });
        }
        continue;
      }
      this.resuming = false;
      this.lastSeq = event.seq;
      delivered.push(event);
    }
    if (delivered.length) this.options.onEvents(delivered);
  }

  connectionEvent(event) {
    switch (event.type) {
      case "welcome": {
        const resumedSame = this.session === event.session;
        this.session = event.session;
        this.greeted = true;
        this.limits = event.limits || null;
        this.backoff = BACKOFF_MIN_MS;
        this.resuming = false;
        if (event.replay === "gap" || !resumedSame) {
          // Nothing to replay from our position: the UI reloads history and we continue from
          // the server's newest seq. (A new session starts at welcome.last_seq, usually 0.)
          this.lastSeq = event.last_seq;
        }
        this.options.onWelcome &&
          this.options.onWelcome(event, { gap: event.replay === "gap" && resumedSame, newSession: !resumedSame });
        this.setState("connected");
        this.startWatchdog();
        // Resend whatever was never acknowledged, same ids: the server dedups.
        for (const frame of this.pending.values()) this.sendRaw(frame);
        break;
      }
      case "ack":
        this.pending.delete(event.id);
        this.options.onAck && this.options.onAck(event);
        break;
      case "ping":
        this.sendRaw({ type: "pong", ...(event.nonce ? { nonce: event.nonce } : {}) });
        break;
      case "error":
        this.onErrorEvent(event);
        break;
      case "closing":
        if (!event.reconnect) {
          this.stopped = true;
          this.setState(event.reason === "auth_failed" ? "auth" : "ended", event);
        }
        break;
      default:
        break;
    }
  }

  onErrorEvent(event) {
    if (event.code === "unknown_session" && !this.greeted) {
      // The session is gone (server restarted, expired): start a fresh one on this socket.
      this.session = null;
      this.lastSeq = 0;
      const hello = { type: "hello", version: PROTOCOL_VERSION, encoding: "json" };
      if (this.thread) hello.thread = this.thread;
      this.sendRaw(hello);
      this.options.onError && this.options.onError({ ...event, silent: true });
      return;
    }
    if (event.code === "resume_gap") {
      this.resuming = false;
      this.options.onWelcome && this.options.onWelcome({ replay: "gap", session: this.session }, { gap: true, midConnection: true });
    }
    if (event.ref && this.pending.has(event.ref)) {
      if (event.retry) {
        // Not accepted (busy): same frame, same id, a little later.
        const frame = this.pending.get(event.ref);
        setTimeout(() => this.sendRaw(frame), 500 + Math.random() * 500);
        return;
      }
      this.pending.delete(event.ref);
    }
    this.options.onError && this.options.onError(event);
  }

  /** Send a frame that asks the session to do something; returns its client id. */
  send(frame) {
    const full = { id: this.nextId(), ...frame };
    this.pending.set(full.id, full);
    if (this.greeted) this.sendRaw(full);
    return full.id;
  }

  /** Stop is a control signal: never queued for resending after the moment has passed. */
  stop() {
    const id = this.nextId();
    this.sendRaw({ type: "stop", id });
    return id;
  }

  sendRaw(frame) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  /** Treat heartbeat_timeout seconds of silence as a dead connection (PROTOCOL.md section 8). */
  startWatchdog() {
    clearInterval(this.watchdog);
    const limits = this.limits || {};
    const timeoutMs = (limits.heartbeat_timeout || 60) * 1000;
    const intervalMs = Math.max(1000, (limits.heartbeat_interval || 20) * 500);
    this.watchdog = setInterval(() => {
      if (!this.socket) return;
      const quiet = Date.now() - this.lastHeard;
      if (quiet > timeoutMs) this.socket.close();
      else if (quiet > intervalMs) this.sendRaw({ type: "ping", nonce: "c" });
    }, intervalMs);
  }

  scheduleReconnect() {
    clearTimeout(this.retryTimer);
    this.setState(navigator.onLine === false ? "offline" : "reconnecting");
    const delay = this.backoff * (0.75 + Math.random() * 0.5);
    this.backoff = Math.min(BACKOFF_MAX_MS, this.backoff * 2);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  reconnectNow() {
    if (this.stopped || (this.socket && this.socket.readyState <= WebSocket.OPEN)) return;
    clearTimeout(this.retryTimer);
    this.backoff = BACKOFF_MIN_MS;
    this.connect();
  }

  /** Drop the socket on purpose (tests, or switching threads); reconnects unless `close()`d. */
  drop() {
    if (this.socket) this.socket.close();
  }

  close() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.watchdog);
    window.removeEventListener("online", this.onOnline);
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.close(1000);
    }
  }

  setState(state, detail) {
    this.state = state;
    this.options.onState(state, detail);
  }
}
