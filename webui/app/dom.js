// `h(tag, attrs, children)`: build DOM nodes without ever parsing HTML.
//
// Children that are strings become text nodes, so whatever a model, a user or an element name
// contains is shown as text. Attributes are set with setAttribute; `on*` attributes are refused
// here on purpose (handlers go through addEventListener / event delegation).
export function h(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (name.startsWith("on")) throw new Error(`h(): no inline handlers (${name})`);
    node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  if (children == null || children === false) return;
  if (Array.isArray(children)) {
    for (const child of children) append(node, child);
  } else if (children instanceof Node) {
    node.append(children);
  } else {
    node.append(document.createTextNode(String(children)));
  }
}

/** An SVG element (charts). */
export function svg(tag, attrs = {}, children = []) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value != null) node.setAttribute(name, String(value));
  }
  append(node, children);
  return node;
}
