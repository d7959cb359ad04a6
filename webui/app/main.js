// The full page: chat + header controls (theme, language, new chat) + history sidebar.
import { ChatView } from "./chat.js";
import { History } from "./history.js";
import { CATALOGS, language, setLanguage, t } from "./i18n.js";
import { applyTheme, preferredTheme } from "./theme.js";
import { h } from "./dom.js";
import { languagesReady } from "./markdown.js";

const params = new URLSearchParams(location.search);
setLanguage(params.get("lang") || localStorage.getItem("triolet.lang"));
document.documentElement.lang = language();
let theme = localStorage.getItem("triolet.theme") || preferredTheme();
applyTheme(document.documentElement, document, theme);

const base = location.origin + location.pathname.replace(/\/[^/]*$/, "");
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

const storageKey = `triolet.session:${base}`;
let history = null;
const chat = new ChatView(chatHost, {
  base,
  title: document.title,
  storageKey,
  headerExtras: [newChat, langSelect, themeButton],
  loadHistory: (thread) => (history ? history.events(thread) : Promise.resolve(null)),
});
newChat.addEventListener("click", () => {
  sessionStorage.removeItem(storageKey);
  chat.resetView();
  chat.connect({ session: null });
  chat.input.focus();
});

// What the server offers: its OpenAPI document names the app and lists optional routes.
fetch(`${base}/openapi.json`)
  .then((r) => (r.ok ? r.json() : null))
  .then((doc) => {
    if (!doc) return;
    const title = doc.info && doc.info.title;
    if (title) {
      document.title = title;
      chat.titleNode.textContent = title;
    }
    const paths = doc.paths || {};
    chat.features.feedback = "/api/messages/{message_id}/feedback" in paths;
    chat.features.upload = "/api/sessions/{session_id}/files" in paths;
    if ("/api/threads" in paths) {
      history = new History(app, {
        base,
        onOpen: (thread) => chat.openThread(thread),
      });
      history.refresh();
    }
  })
  .catch(() => {});

chat.connect();
chat.input.focus();
// Re-render code blocks once highlighting is available (messages shown before it stay plain).
languagesReady.then(() => chat.list.nodes.size && chat.cache.clear());
// For tests and debugging: the live objects (no secrets in them).
window.triolet = { chat };
