// HTTP calls to the server's API, with the caller's credentials.
//
// Who the caller is: a signed-in user sends `Authorization: Bearer <token>`; an anonymous
// visitor has no identity, and the server scopes its stored data by the session it holds
// (the `X-Triolet-Session` header, see transport/_scope.py). The scope of a stored thread is
// the session that started it, whose id is also the thread's id.

export const SESSION_HEADER = "X-Triolet-Session";

export class Api {
  /**
   * @param {string} base   the server's base URL
   * @param {() => string|null} token   the current bearer token, if any
   */
  constructor(base, token) {
    this.base = base.replace(/\/$/, "");
    this.token = token || (() => null);
  }

  headers(scope, extra = {}) {
    const headers = { ...extra };
    const token = this.token();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (scope) headers[SESSION_HEADER] = scope;
    return headers;
  }

  /** A JSON request; throws an Error with `.status` and the problem's `.code` on failure. */
  async json(path, { method = "GET", body, scope } = {}) {
    const init = { method, credentials: "same-origin", headers: this.headers(scope) };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    const response = await fetch(this.base + path, init);
    if (!response.ok) throw await problem(response);
    return response.status === 204 ? null : response.json();
  }

  /**
   * Upload one file to a session with progress. fetch() cannot report upload progress
   * (request streams are not in every browser), XMLHttpRequest's `upload.onprogress` can.
   * @returns {{promise: Promise<object>, abort: () => void}}  resolves to the stored file
   */
  upload(session, file, onProgress) {
    const xhr = new XMLHttpRequest();
    const promise = new Promise((resolve, reject) => {
      xhr.open("POST", `${this.base}/api/sessions/${encodeURIComponent(session)}/files`);
      for (const [name, value] of Object.entries(this.headers(session))) xhr.setRequestHeader(name, value);
      xhr.responseType = "json";
      xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
      xhr.onload = () => {
        const body = xhr.response || {};
        if (xhr.status >= 200 && xhr.status < 300 && body.files && body.files.length) resolve(body.files[0]);
        else reject(Object.assign(new Error(body.detail || `HTTP ${xhr.status}`), { status: xhr.status, code: body.error }));
      };
      xhr.onerror = () => reject(new Error("network"));
      xhr.onabort = () => reject(Object.assign(new Error("aborted"), { aborted: true }));
      const form = new FormData();
      form.append("file", file, file.name || "pasted");
      xhr.send(form);
    });
    return { promise, abort: () => xhr.abort() };
  }
}

async function problem(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: the status says enough
  }
  const message = (body && (body.detail || body.message)) || `HTTP ${response.status}`;
  return Object.assign(new Error(message), { status: response.status, code: body && (body.error || body.code) });
}

/** "20 MB", "512 KB": sizes for people (binary multiples, as limits are usually configured). */
export function formatBytes(n) {
  if (n == null) return "";
  if (n < 1024) return `${n} B`;
  const units = ["KB", "MB", "GB"];
  let value = n;
  let unit = "B";
  for (const u of units) {
    if (value < 1024) break;
    value /= 1024;
    unit = u;
  }
  return `${value >= 10 ? Math.round(value) : value.toFixed(1)} ${unit}`;
}

/** Does `type` match one of the allowed patterns ("image/*", "application/pdf")? */
export function typeAllowed(type, allowed) {
  if (!allowed || !allowed.length) return true;
  const t = (type || "").toLowerCase();
  return allowed.some((pattern) => {
    const p = pattern.toLowerCase();
    return p === "*/*" || p === t || (p.endsWith("/*") && t.startsWith(p.slice(0, -1)));
  });
}
