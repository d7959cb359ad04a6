// The login screen, shown when the server refuses the connection's credentials (`hello`
// answered with `error auth_failed`, then `closing auth_failed`).
//
// The auth methods (password, OAuth, ...) arrive with the auth issue. Until then this screen
// is deliberately small: when the server names a login route (`/api/ui` -> auth.login_url) it
// posts {username, password} there and expects {token}; otherwise it accepts an access token
// pasted by the user. Either way the token is kept in sessionStorage (gone with the tab) and
// sent as `hello.token` and as the bearer token of API calls.
import { h } from "./dom.js";
import { t } from "./i18n.js";

export class LoginScreen {
  /**
   * @param {HTMLElement} host
   * @param {object} options
   * @param {string|null} options.loginUrl
   * @param {string} options.base
   * @param {(token: string) => void} options.onToken
   */
  constructor(host, { loginUrl, base, onToken }) {
    this.loginUrl = loginUrl;
    this.base = base;
    this.onToken = onToken;
    this.error = h("p", { class: "login-error", role: "alert" });
    const fields = loginUrl
      ? [this.input("username", "text", t("login.username"), "username"), this.input("password", "password", t("login.password"), "current-password")]
      : [this.input("token", "password", t("login.token"), "off")];
    this.form = h("form", { class: "login-form" }, [h("h2", { id: "login-title" }, t("login.title")), h("p", {}, t("login.explain")), ...fields, this.error, h("button", { type: "submit", class: "primary" }, t("login.submit"))]);
    this.element = h("div", { class: "login-screen", role: "dialog", "aria-modal": "true", "aria-labelledby": "login-title", hidden: true }, this.form);
    host.append(this.element);
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
  }

  input(name, type, label, autocomplete) {
    const id = `login-${name}`;
    return h("div", { class: "setting" }, [h("label", { for: id }, label), h("input", { id, name, type, autocomplete, required: true })]);
  }

  show(message) {
    this.error.textContent = message || "";
    this.element.hidden = false;
    this.form.querySelector("input").focus();
  }

  hide() {
    this.element.hidden = true;
  }

  async submit() {
    const data = Object.fromEntries(new FormData(this.form));
    if (!this.loginUrl) {
      this.onToken(String(data.token || "").trim());
      return;
    }
    try {
      const response = await fetch(new URL(this.loginUrl, this.base + "/"), {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ username: data.username, password: data.password }),
        credentials: "same-origin",
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok || typeof body.token !== "string") throw new Error(body.detail || t("login.refused"));
      this.onToken(body.token);
    } catch (err) {
      this.error.textContent = err.message;
    }
  }
}
