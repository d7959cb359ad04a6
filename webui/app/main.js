// The full page: chat + header controls (theme, language, new chat) + history sidebar.
//
// Start-up order: the server's UI settings first (GET /api/ui: name, logo, theme, colours,
// language, upload limits, login route), because they decide the strings, the theme and the
// composer's limits; then the chat is built and connects. /api/ui is one small local request;
// without it (an older or a headless server) the page uses its own defaults.
import { ChatView } from "./chat.js";
import { History } from "./history.js";
import { LoginScreen } from "./login.js";
import { CATALOGS, language, setLanguage, t } from "./i18n.js";
import { applyColors, applyTheme, preferredTheme } from "./theme.js";
import { h } from "./dom.js";
import { languagesReady } from "./markdown.js";

const base = location.origin + location.pathname.replace(/\/[^/]*$/, "");
const ui = await fetch(`${base}/api/ui`)
  .then((r) => (r.ok ? r.json() : {}))
  .catch(() => ({}));

const params = new URLSearchParams(location.search);
// The user's own choice wins over the server's default language.
setLanguage(params.get("lang") || localStorage.getItem("triolet.lang") || ui.language || null);
document.documentElement.lang = language();
// Theme: the user's toggle (remembered) wins, else the config's, else the browser's preference.
const configured = ui.theme === "light" || ui.theme === "dark" ? ui.theme : null;
let theme = localStorage.getItem("triolet.theme") || configured || preferredTheme();
applyTheme(document.documentElement, document, theme);
applyColors(document, ui.colors, configured);
const title = ui.name || document.title;
document.title = title;

const app = document.getElementById("app");
const chatHost = h("main", { class: "chat-host" });
app.append(chatHost);

const themeButton = h("button", { type: "button", "aria-pressed": String(theme === "dark"), "aria-label": t("theme.toggle"), title: t("theme.toggle") }, "◐");
themeButton.addEventListener("click", () => {
  theme = theme === "dark" ? "light" : "dark";
  localStorage.setItem("triolet.theme", theme);
  applyTheme(document.documentElement, document, theme);
  themeButton.setAttribute("aria-pressed", String(theme === "dark"));
});
const langSelect = h("select", { "aria-label": t("lang.label") }, Object.keys(CATALOGS).map((code) => h("option", { value: code, selected: code === language() }, code.toUpperCase())));
langSelect.addEventListener("change", () => {
  localStorage.setItem("triolet.lang", langSelect.value);
  location.reload(); // strings are built once; a reload re-attaches to the same session
});
const newChat = h("button", { type: "button" }, t("history.new"));

// The token a login gave us, for this tab only (sessionStorage: closing the tab signs out).
const tokenKey = `triolet.token:${base}`;
const token = () => sessionStorage.getItem(tokenKey);
const storageKey = `triolet.session:${base}`;
let history = null;
let signedIn = false;
const chat = new ChatView(chatHost, {
  base,
  title,
  storageKey,
  token,
  uploads: ui.uploads || null,
  headerExtras: [newChat, langSelect, themeButton],
  loadHistory: (thread) => (history ? history.load(thread) : Promise.resolve(null)),
  onThread: (thread, welcome) => {
    signedIn = !!welcome.user;
    if (history && thread) history.remember(thread);
  },
  onAck: () => history && history.refreshSoon(),
  onAuth: (closing) => login.show(closing.message || ""),
});
if (ui.logo_url) {
  // The logo is decoration beside the name, which is the accessible title.
  chat.titleNode.prepend(h("img", { class: "chat-logo", src: new URL(ui.logo_url, base + "/").href, alt: "" }));
}
chat.features.upload = !!ui.uploads;
chat.attachButton.hidden = !ui.uploads;

const login = new LoginScreen(app, {
  base,
  loginUrl: (ui.auth && ui.auth.login_url) || null,
  onToken: (value) => {
    if (!value) return;
    sessionStorage.setItem(tokenKey, value);
    login.hide();
    chat.connect();
  },
});

newChat.addEventListener("click", () => {
  sessionStorage.removeItem(storageKey);
  chat.resetView();
  chat.attachments.clear();
  chat.thread = null;
  chat.connect({ session: null });
  chat.input.focus();
});

// Optional routes are listed in the server's OpenAPI document: feedback and history appear
// only where the server stores conversations.
fetch(`${base}/openapi.json`)
  .then((r) => (r.ok ? r.json() : null))
  .then((doc) => {
    const paths = (doc && doc.paths) || {};
    chat.features.feedback = "/api/messages/{message_id}/feedback" in paths;
    if (chat.features.feedback) chat.cache.clear(), chat.list.schedule();
    if ("/api/threads" in paths) {
      history = new History(app, {
        api: chat.api,
        storageKey: `triolet.threads:${base}`,
        signedIn: () => signedIn,
        onOpen: (thread) => chat.openThread(thread),
      });
      if (chat.scope) history.remember(chat.scope);
      else history.refresh();
    }
  })
  .catch(() => {});

chat.connect();
chat.input.focus();
// Re-render code blocks once highlighting is available (messages shown before it stay plain).
languagesReady.then(() => chat.list.nodes.size && chat.cache.clear());
// For tests and debugging: the live objects (no secrets in them).
window.triolet = { chat, ui, get history() { return history; } };
