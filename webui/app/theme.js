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
