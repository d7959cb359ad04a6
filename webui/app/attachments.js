// Files attached to the next message: picked with the button, dropped on the chat, or pasted.
//
// Each file is checked against the server's limits (GET /api/ui -> uploads) before a byte is
// sent, so a too-large or refused file is explained at once instead of after a long upload.
// Accepted files upload immediately, in the background, with a progress bar each; sending
// waits for the uploads still running and then carries their ids (`message.files`). The
// server checks everything again: these checks are for the user, not for security.
import { h } from "./dom.js";
import { t } from "./i18n.js";
import { formatBytes, typeAllowed } from "./api.js";

export class Attachments {
  /**
   * @param {object} options
   * @param {import("./api.js").Api} options.api
   * @param {() => string|null} options.session   the live session files are uploaded to
   * @param {object|null} options.limits   {max_files, max_file_bytes, allowed_types}
   * @param {(text: string) => void} options.onError
   */
  constructor({ api, session, limits, onError }) {
    this.api = api;
    this.session = session;
    this.limits = limits || {};
    this.onError = onError;
    this.items = []; // {file, progress, id, error, abort, promise, node}
    this.counter = 0;
    this.tray = h("ul", { class: "attachments", "aria-label": t("files.tray"), hidden: true });
  }

  /** "Up to 10 MB per file, 32 files; PNG, PDF, ..." — shown beside the attach button. */
  describeLimits() {
    const parts = [];
    if (this.limits.max_file_bytes) parts.push(t("files.max_size", { size: formatBytes(this.limits.max_file_bytes) }));
    if (this.limits.max_files) parts.push(t("files.max_count", { n: this.limits.max_files }));
    const types = this.limits.allowed_types || [];
    if (types.length) parts.push(types.map(shortType).join(", "));
    return parts.join(" · ");
  }

  get uploading() {
    return this.items.some((item) => !item.id && !item.error);
  }

  /** Check and start uploading `files` (a FileList or array). */
  add(files, { maxFiles, maxBytes, accept } = {}) {
    const limitCount = maxFiles || this.limits.max_files || Infinity;
    const limitBytes = maxBytes || this.limits.max_file_bytes || Infinity;
    const allowed = accept && accept.length ? accept : this.limits.allowed_types;
    for (const file of files) {
      if (this.items.length >= limitCount) {
        this.onError(t("files.too_many", { n: limitCount }));
        break;
      }
      if (file.size > limitBytes) {
        this.onError(t("files.too_large", { name: file.name, size: formatBytes(limitBytes) }));
        continue;
      }
      // An empty browser type (unknown extension) is left for the server to sniff.
      if (file.type && !typeAllowed(file.type, allowed)) {
        this.onError(t("files.bad_type", { name: file.name, type: file.type }));
        continue;
      }
      this.start(file);
    }
    this.render();
  }

  start(file) {
    const session = this.session();
    const item = { key: ++this.counter, file, progress: 0, id: null, error: null };
    if (!session) {
      item.error = t("files.no_session");
      this.items.push(item);
      return;
    }
    const upload = this.api.upload(session, file, (fraction) => {
      item.progress = fraction;
      this.update(item);
    });
    item.abort = upload.abort;
    item.promise = upload.promise.then(
      (stored) => {
        item.id = stored.id;
        item.progress = 1;
        this.update(item);
      },
      (err) => {
        if (err.aborted) return;
        item.error = err.message;
        this.update(item);
        this.onError(t("files.failed", { name: file.name, message: err.message }));
      },
    );
    this.items.push(item);
  }

  remove(key) {
    const at = this.items.findIndex((item) => item.key === key);
    if (at < 0) return;
    const [item] = this.items.splice(at, 1);
    if (!item.id && !item.error && item.abort) item.abort();
    this.render();
  }

  /** Wait for running uploads; the ids of the files that made it. */
  async settle() {
    await Promise.all(this.items.map((item) => item.promise).filter(Boolean));
    return this.items.filter((item) => item.id).map((item) => ({ id: item.id, name: item.file.name, size: item.file.size }));
  }

  clear() {
    this.items = [];
    this.render();
  }

  render() {
    this.tray.hidden = this.items.length === 0;
    this.tray.replaceChildren(...this.items.map((item) => (item.node = this.renderItem(item))));
  }

  renderItem(item) {
    const name = item.file.name || t("files.pasted");
    return h("li", { class: "attachment", "data-attachment": item.key }, [
      h("span", { class: "attachment-name" }, name),
      h("span", { class: "attachment-size" }, formatBytes(item.file.size)),
      h("progress", { max: "1", value: String(item.progress), "aria-label": t("files.progress", { name }) }),
      h("span", { class: "attachment-state", role: "status" }, this.stateText(item)),
      h("button", { type: "button", class: "icon", "data-remove-attachment": item.key, "aria-label": t("files.remove", { name }) }, "✕"),
    ]);
  }

  stateText(item) {
    if (item.error) return t("files.error");
    if (item.id) return t("files.done");
    return `${Math.round(item.progress * 100)} %`;
  }

  /** Progress ticks only touch this file's bar and label (no re-render of the tray). */
  update(item) {
    if (!item.node) return;
    item.node.querySelector("progress").value = item.progress;
    item.node.querySelector(".attachment-state").textContent = this.stateText(item);
    item.node.dataset.state = item.error ? "error" : item.id ? "done" : "uploading";
  }
}

const SHORT = { plain: "TXT", markdown: "MD", jpeg: "JPEG", "*": "" };
/** "image/png" -> "PNG", "audio/*" -> "audio", "text/plain" -> "TXT": a list people can read. */
function shortType(type) {
  const [major, minor = ""] = type.split("/");
  if (minor === "*") return major;
  return SHORT[minor] || minor.toUpperCase();
}
