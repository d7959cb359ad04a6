// The widget's chat, mounted in the shadow root made by widget.js.
import { ChatView } from "./chat.js";
import { language, setLanguage, t } from "./i18n.js";
import { applyTheme, preferredTheme } from "./theme.js";
import { h } from "./dom.js";

export function mount(panel, shadow, options, close) {
  setLanguage(options.lang || null);
  const closeButton = h("button", { type: "button", class: "widget-close", "aria-label": t("widget.close") }, "×");
  closeButton.addEventListener("click", close);
  const chat = new ChatView(panel, {
    base: options.base,
    root: shadow,
    title: options.title || t("app.title"),
    storageKey: `triolet.widget:${options.base}`,
    headerExtras: [closeButton],
  });
  chat.element.lang = language();
  applyTheme(chat.element, shadow, options.theme || preferredTheme());
  chat.connect();
  return {
    chat,
    strings: { open: t("widget.open"), close: t("widget.close") },
    focus: () => chat.input.focus(),
  };
}
