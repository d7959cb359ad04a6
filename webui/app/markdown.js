// Markdown to safe DOM: marked parses, DOMPurify sanitizes, highlight.js colours code.
//
// Every piece of text from a model or a user goes through `renderMarkdown` (or is set with
// textContent). marked does not sanitize, so DOMPurify always runs on its output, with a
// stricter profile than its default: no inline styles (they can paint a fake UI over ours),
// no forms, and links open in a new tab without an opener. The page's CSP (script-src 'self')
// is the second wall: even a sanitizer bug could not run an inline script.
import { Marked } from "../vendor/marked/marked.esm.js";
import DOMPurify from "../vendor/dompurify/purify.es.mjs";
import hljs from "../vendor/highlight/core.min.js";
import { t } from "./i18n.js";

const LANGUAGES = [
  "bash", "c", "cpp", "css", "diff", "go", "java", "javascript", "json", "markdown",
  "plaintext", "python", "rust", "shell", "sql", "typescript", "xml", "yaml",
];
const ALIASES = { js: "javascript", ts: "typescript", py: "python", sh: "bash", html: "xml", yml: "yaml", rs: "rust" };

// Languages load in the background; until they arrive, code shows plain (still readable).
export const languagesReady = Promise.all(
  LANGUAGES.map((name) =>
    import(`../vendor/highlight/languages/${name}.min.js`).then((mod) => hljs.registerLanguage(name, mod.default)),
  ),
).catch(() => {});

const marked = new Marked({ gfm: true, breaks: true, async: false });

const PURIFY = {
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "iframe", "object", "embed"],
  FORBID_ATTR: ["style", "id", "name"],
  RETURN_DOM_FRAGMENT: true,
};

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A" && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

/**
 * Markdown text -> a sanitized DocumentFragment.
 * @param {string} text
 * @param {{highlight?: boolean}} options  highlight is skipped while a message streams (cost)
 */
export function renderMarkdown(text, { highlight = true } = {}) {
  const html = marked.parse(text || "");
  const fragment = DOMPurify.sanitize(html, PURIFY);
  for (const pre of fragment.querySelectorAll("pre")) decorateCode(pre, highlight);
  return fragment;
}

function decorateCode(pre, highlight) {
  const code = pre.querySelector("code");
  if (!code) return;
  if (highlight) {
    const match = /language-([\w+-]+)/.exec(code.className);
    const lang = match && (ALIASES[match[1]] || match[1]);
    if (lang && hljs.getLanguage(lang)) {
      code.classList.add(`language-${lang}`);
      hljs.highlightElement(code); // highlight.js escapes the code; its output is safe
    }
  }
  // The copy button is ours (added after sanitizing): it works by event delegation in the
  // view, so nothing here carries a handler.
  const wrap = document.createElement("div");
  wrap.className = "code-block";
  pre.replaceWith(wrap);
  const copy = document.createElement("button");
  copy.type = "button";
  copy.className = "copy-code";
  copy.dataset.copy = "";
  copy.textContent = t("msg.copy");
  wrap.append(copy, pre);
}

/** Plain text for the live region and for tooltips. */
export function plainText(markdown) {
  const fragment = renderMarkdown(markdown, { highlight: false });
  for (const button of fragment.querySelectorAll("button")) button.remove();
  return (fragment.textContent || "").replace(/\s+/g, " ").trim();
}

/** Copy `text` to the clipboard, also outside secure contexts (plain http on a LAN). */
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // fall through to the old way (permissions, unfocused document)
    }
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.append(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  return ok;
}
