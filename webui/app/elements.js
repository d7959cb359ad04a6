// Elements (PROTOCOL.md `element`): image, file, pdf, audio, video, text, table, plot.
//
// Names, text content and table cells are always set as text. URLs are resolved against the
// server's base URL and only http(s), blob and data:image/... ones are used, so an element
// can never smuggle a `javascript:` link.
import { t } from "./i18n.js";
import { h } from "./dom.js";
import { renderChart } from "./chart.js";

export function safeUrl(url, base) {
  if (typeof url !== "string" || !url) return null;
  if (/^data:(image|audio|video)\/[\w.+-]+;base64,/i.test(url)) return url;
  try {
    const parsed = new URL(url, base);
    return ["http:", "https:", "blob:"].includes(parsed.protocol) ? parsed.href : null;
  } catch {
    return null;
  }
}

function formatSize(bytes) {
  if (typeof bytes !== "number") return "";
  const units = ["B", "KB", "MB", "GB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

function download(el, url) {
  const link = h("a", { class: "el-file", href: url, download: el.name || "" }, [
    h("span", { class: "el-file-icon", "aria-hidden": "true" }, "⬇"),
    h("span", { class: "el-file-name" }, el.name || "file"),
    el.size != null ? h("span", { class: "el-file-size" }, formatSize(el.size)) : null,
  ]);
  link.setAttribute("aria-label", t("el.download", { name: el.name || "file" }));
  return link;
}

function table(el) {
  // Accepts {columns, rows: [[...]]}, [{col: value}, ...] or [[...], ...] (first row = header).
  let columns = [];
  let rows = [];
  const content = el.content;
  if (content && Array.isArray(content.rows)) {
    columns = content.columns || [];
    rows = content.rows;
  } else if (Array.isArray(content) && content.length && !Array.isArray(content[0]) && typeof content[0] === "object") {
    columns = Object.keys(content[0]);
    rows = content.map((row) => columns.map((c) => row[c]));
  } else if (Array.isArray(content) && content.length) {
    [columns, ...rows] = content;
  }
  const cell = (v) => (v == null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v));
  return h("div", { class: "el-table-wrap", tabindex: "0", role: "region", "aria-label": el.name || "table" }, [
    h("table", { class: "el-table" }, [
      h("caption", {}, el.name || ""),
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, cell(c))))),
      h("tbody", {}, rows.map((row) => h("tr", {}, (Array.isArray(row) ? row : [row]).map((v) => h("td", {}, cell(v)))))),
    ]),
  ]);
}

/** The element's full view (inline, or inside the side panel). */
export function renderElementBody(el, base) {
  const url = safeUrl(el.url, base);
  const name = el.name || el.kind;
  switch (el.kind) {
    case "image": {
      const src = url || safeUrl(typeof el.content === "string" ? el.content : null, base);
      return src ? h("img", { class: "el-image", src, alt: name, loading: "lazy" }) : h("span", {}, name);
    }
    case "audio":
      return url ? h("audio", { controls: "", src: url, preload: "metadata", "aria-label": name }) : h("span", {}, name);
    case "video":
      return url ? h("video", { controls: "", src: url, preload: "metadata", "aria-label": name, class: "el-video" }) : h("span", {}, name);
    case "pdf":
      return url
        ? h("div", { class: "el-pdf" }, [h("iframe", { src: url, title: name, loading: "lazy" }), download(el, url)])
        : h("span", {}, name);
    case "text": {
      const text = typeof el.content === "string" ? el.content : el.content != null ? JSON.stringify(el.content, null, 2) : "";
      return h("figure", { class: "el-text" }, [
        h("figcaption", {}, name),
        text ? h("pre", { tabindex: "0" }, text) : url ? download(el, url) : null,
      ]);
    }
    case "table":
      return table(el);
    case "plot":
    case "chart":
      return renderChart(el.content, t("el.chart", { name }));
    case "file":
    default:
      return url ? download(el, url) : h("span", { class: "el-file-name" }, name);
  }
}

/**
 * An element as attached to a message: inline shows the body; "side" and "page" show a
 * button / link that opens it in the side panel / a new tab.
 */
export function renderElement(el, base) {
  const name = el.name || el.kind;
  if (el.display === "side") {
    return h("button", { type: "button", class: "el-chip", "data-side": el.id }, t("el.side", { name }));
  }
  if (el.display === "page") {
    const url = safeUrl(el.url, base);
    if (url) return h("a", { class: "el-chip", href: url, target: "_blank", rel: "noopener noreferrer" }, t("el.open", { name }));
  }
  return h("div", { class: `el el-${el.kind}` }, renderElementBody(el, base));
}
