// Light and dark themes: a data-theme attribute switches the CSS variables, and the matching
// highlight.js stylesheet is enabled (the other gets media="not all", so it never applies).

export function preferredTheme() {
  return window.matchMedia && matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

/**
 * @param {HTMLElement} scope     element that gets data-theme (<html> for the page)
 * @param {Document|ShadowRoot} linkRoot  where the highlight.js <link data-hl> tags are
 * @param {"light"|"dark"} theme
 */
export function applyTheme(scope, linkRoot, theme) {
  scope.dataset.theme = theme;
  for (const link of linkRoot.querySelectorAll("link[data-hl]")) {
    link.media = link.dataset.hl === theme ? "all" : "not all";
  }
}

// [ui.colors] from the config -> the theme's CSS variables. Each colour may stand for several
// variables (the accent is also the focus ring). Values are checked to be #hex before they go
// into a stylesheet, so a bad value can never inject CSS.
const COLOR_VARS = {
  primary: ["--accent", "--focus"],
  background: ["--bg"],
  surface: ["--panel"],
  text: ["--fg"],
};
const HEX = /^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$/;

/**
 * @param {Document|ShadowRoot} root   where the <style> goes
 * @param {object} colors   {primary, background, surface, text}
 * @param {"light"|"dark"|null} theme   the theme they were chosen for (null: both)
 */
export function applyColors(root, colors, theme) {
  const rules = [];
  for (const [name, value] of Object.entries(colors || {})) {
    if (!HEX.test(String(value)) || !COLOR_VARS[name]) continue;
    for (const variable of COLOR_VARS[name]) rules.push(`${variable}: ${value};`);
  }
  if (!rules.length) return;
  // Overrides apply to the configured theme only: a light palette would be unreadable if the
  // user switches to dark. Specificity beats both theme blocks of chat.css.
  const scope = theme ? `[data-theme="${theme}"]` : ":root";
  const style = document.createElement("style");
  style.dataset.trioletColors = "";
  style.textContent = `${scope} .triolet-chat, ${scope} .triolet-vars, ${scope} .triolet-chat[data-theme] { ${rules.join(" ")} }`;
  (root.head || root).append(style);
}
