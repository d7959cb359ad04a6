// Step trees (PROTOCOL.md `step`): nested <details> to any depth, with a filter.
//
// <details>/<summary> give a collapsible tree that works with the keyboard and screen readers
// without any script. Which steps are open is kept in the view (`expanded`), so a tree that
// is rebuilt because a step changed, or scrolled out and back in, looks the same.
// Input and output are shown as text (JSON pretty-printed), never as HTML.
import { h } from "./dom.js";
import { t } from "./i18n.js";

function duration(step) {
  if (typeof step.startedAt !== "number" || typeof step.endedAt !== "number") return null;
  const seconds = Math.max(0, step.endedAt - step.startedAt);
  return seconds < 1 ? `${Math.round(seconds * 1000)} ms` : `${seconds.toFixed(2)} s`;
}

/** Token counts in the shapes seen in the wild: tokens {prompt, completion}, tokens_in/out, usage. */
export function tokenCount(metadata) {
  if (!metadata || typeof metadata !== "object") return null;
  const sum = (obj) => Object.values(obj).reduce((acc, v) => acc + (typeof v === "number" ? v : 0), 0);
  if (typeof metadata.tokens === "number") return metadata.tokens;
  if (metadata.tokens && typeof metadata.tokens === "object") return sum(metadata.tokens);
  if (metadata.usage && typeof metadata.usage === "object") return metadata.usage.total_tokens ?? sum(metadata.usage);
  const parts = ["tokens_in", "tokens_out", "prompt_tokens", "completion_tokens"].map((k) => metadata[k]).filter((v) => typeof v === "number");
  return parts.length ? parts.reduce((a, b) => a + b, 0) : null;
}

function show(value) {
  if (value == null) return null;
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

/** Everything the filter looks at, lower-cased. */
function searchText(step) {
  return [step.name, step.kind, step.status, show(step.input), show(step.output), step.metadata?.model]
    .filter(Boolean)
    .join("\n")
    .toLowerCase();
}

function countSteps(step) {
  return 1 + step.children.reduce((n, c) => n + countSteps(c), 0);
}

function renderStep(step, expanded, depth) {
  const status = step.status || "running";
  const tokens = tokenCount(step.metadata);
  const model = step.metadata && typeof step.metadata.model === "string" ? step.metadata.model : null;
  const meta = [
    h("span", { class: `step-status status-${status}` }, t(`status.${status}`)),
    duration(step) ? h("span", { class: "step-duration" }, duration(step)) : null,
    model ? h("span", { class: "step-model" }, model) : null,
    tokens != null ? h("span", { class: "step-tokens" }, t("steps.tokens", { n: tokens })) : null,
  ];
  const input = show(step.input);
  const output = show(step.output);
  const body = [
    input != null ? h("div", { class: "step-io" }, [h("div", { class: "step-io-label" }, t("steps.input")), h("pre", { tabindex: "0" }, input)]) : null,
    output != null ? h("div", { class: "step-io" }, [h("div", { class: "step-io-label" }, t("steps.output")), h("pre", { tabindex: "0" }, output)]) : null,
    step.children.length ? h("ul", { class: "step-children" }, step.children.map((c) => renderStep(c, expanded, depth + 1))) : null,
  ];
  const details = h("details", { class: "step", "data-step": step.id, open: expanded.has(step.id) }, [
    h("summary", {}, [
      h("span", { class: "step-kind" }, step.kind || "step"),
      h("span", { class: "step-name" }, step.name || step.id),
      ...meta,
    ]),
    h("div", { class: "step-body" }, body),
  ]);
  return h("li", { class: "step-item", "data-search": searchText(step), "data-depth": depth }, details);
}

/**
 * A tree of root steps (one trace, or the steps attached to one message).
 * @param {object[]} roots
 * @param {{expanded: Set<string>, filters: Map<string,string>}} view
 * @param {string} treeKey  identifies this tree's filter
 */
export function renderStepTree(roots, view, treeKey) {
  const total = roots.reduce((n, r) => n + countSteps(r), 0);
  const running = roots.some(function busy(s) {
    return s.status === "running" || s.children.some(busy);
  });
  const failed = roots.some(function bad(s) {
    return s.status === "error" || s.children.some(bad);
  });
  const filter = view.filters.get(treeKey) || "";
  const openKey = `tree:${treeKey}`;
  const tree = h("details", { class: "step-tree", open: view.expanded.has(openKey) || !!filter, "data-step": openKey }, [
    h("summary", {}, [
      h("span", { class: "step-tree-title" }, t("steps.title")),
      h("span", { class: "step-count" }, t("steps.count", { n: total })),
      running ? h("span", { class: "step-status status-running" }, t("status.running")) : null,
      failed ? h("span", { class: "step-status status-error" }, t("status.error")) : null,
    ]),
    h("div", { class: "step-tree-body" }, [
      h("input", {
        type: "search",
        class: "step-filter",
        placeholder: t("steps.filter"),
        "aria-label": t("steps.filter"),
        "data-filter": treeKey,
        "data-focus-key": `filter:${treeKey}`,
        value: filter,
      }),
      h("ul", { class: "step-roots" }, roots.map((r) => renderStep(r, view.expanded, 0))),
    ]),
  ]);
  if (filter) applyFilter(tree, filter);
  return tree;
}

/**
 * Show only the steps whose name, kind, status, input, output or model contain `text`, with
 * their ancestors (so a match keeps its place in the tree), opened so matches are visible.
 * Done on the existing nodes, so typing in the filter never rebuilds the input.
 */
export function applyFilter(tree, text) {
  const needle = text.trim().toLowerCase();
  const visit = (li) => {
    const own = !needle || li.dataset.search.includes(needle);
    const children = li.querySelector(":scope > details > .step-body > .step-children");
    let below = false;
    if (children) for (const child of children.children) below = visit(child) || below;
    li.hidden = !(own || below);
    const details = li.querySelector(":scope > details");
    if (needle && below) details.open = true;
    return own || below;
  };
  for (const li of tree.querySelectorAll(":scope > .step-tree-body > .step-roots > li")) visit(li);
}
