// A virtualized list of variable-height items: only what is near the viewport is in the DOM.
//
// Why: a thread of 5,000 messages with Markdown, code and charts would take seconds to lay
// out and make every later update slow. Here the DOM holds the visible items plus a margin
// (`overscan` pixels each way); the rest is represented by padding on the container, sized
// from measured heights (or an estimate until an item has been seen once).
//
// Scrolling rules: when the user is at the bottom, the list stays at the bottom as items
// grow (a streaming reply); otherwise, the first visible item stays where it is even when
// items above it change height (we do the anchoring ourselves: `overflow-anchor` is off,
// because the browser's own anchoring fights the padding changes).

const DEFAULT_ESTIMATE = 96;
const BOTTOM_SLACK = 24;

export class VirtualList {
  /**
   * @param {HTMLElement} scroller  the element with overflow: auto
   * @param {HTMLElement} container the element inside it that holds the items
   * @param {object} options
   * @param {(key: string) => HTMLElement} options.render   build an item's node
   * @param {number} [options.overscan]
   */
  constructor(scroller, container, { render, overscan = 800 }) {
    this.scroller = scroller;
    this.container = container;
    this.render = render;
    this.overscan = overscan;
    this.keys = [];
    this.heights = new Map(); // key -> measured height (px, margins included)
    this.nodes = new Map(); // key -> mounted node
    this.offsets = new Float64Array(1);
    this.offsetsValid = false;
    this.stick = true; // follow the bottom
    this.scheduled = false;
    this.estimate = DEFAULT_ESTIMATE;
    scroller.style.overflowAnchor = "none";
    container.style.overflowAnchor = "none";
    scroller.addEventListener("scroll", () => this.onScroll(), { passive: true });
    // Images loading, steps opening, fonts arriving: a mounted item changed height.
    this.resizeObserver = new ResizeObserver(() => this.schedule());
  }

  /** Replace the ordered keys (after items were added or removed). */
  setKeys(keys) {
    this.keys = keys;
    this.offsetsValid = false;
    this.schedule();
  }

  /** Rebuild a mounted item's node (its data changed); an unmounted one renders when shown. */
  refresh(key) {
    const node = this.nodes.get(key);
    if (!node) return;
    const fresh = this.render(key, node);
    if (fresh !== node) {
      node.replaceWith(fresh);
      this.resizeObserver.unobserve(node);
      this.resizeObserver.observe(fresh);
      this.nodes.set(key, fresh);
    }
    this.schedule();
  }

  /** Bring an item into view (keyboard navigation, "jump to"). */
  scrollToKey(key) {
    const index = this.keys.indexOf(key);
    if (index < 0) return;
    this.computeOffsets();
    this.stick = index === this.keys.length - 1;
    this.scroller.scrollTop = this.offsets[index];
    this.update();
  }

  scrollToBottom() {
    this.stick = true;
    this.schedule();
  }

  onScroll() {
    if (this.ignoreScroll) return;
    const s = this.scroller;
    this.stick = s.scrollHeight - s.scrollTop - s.clientHeight < BOTTOM_SLACK;
    this.schedule();
  }

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.update();
    });
  }

  computeOffsets() {
    if (this.offsetsValid) return;
    const n = this.keys.length;
    if (this.offsets.length !== n + 1) this.offsets = new Float64Array(n + 1);
    let total = 0;
    for (let i = 0; i < n; i += 1) {
      this.offsets[i] = total;
      total += this.heights.get(this.keys[i]) ?? this.estimate;
    }
    this.offsets[n] = total;
    this.offsetsValid = true;
  }

  /** First index whose bottom edge is below `y` (binary search on the offsets). */
  indexAt(y) {
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.offsets[mid + 1] <= y) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Mount what is near the viewport, measure it, fix padding and scroll position. */
  update() {
    for (let pass = 0; pass < 3; pass += 1) {
      if (!this.layout()) break; // re-layout only while measurements keep changing
    }
  }

  layout() {
    this.computeOffsets();
    const s = this.scroller;
    const n = this.keys.length;
    const viewTop = this.stick ? Math.max(0, this.offsets[n] - s.clientHeight) : s.scrollTop;
    const start = Math.max(0, this.indexAt(viewTop - this.overscan));
    const end = Math.min(n, this.indexAt(viewTop + s.clientHeight + this.overscan) + 1);
    // The item at the top of the viewport, and where it sits: the anchor we keep still.
    const anchorIndex = Math.min(n - 1, this.indexAt(viewTop));
    const anchorKey = anchorIndex >= 0 ? this.keys[anchorIndex] : null;
    const anchorDelta = anchorIndex >= 0 ? viewTop - this.offsets[anchorIndex] : 0;

    const wanted = new Set(this.keys.slice(start, end));
    for (const [key, node] of this.nodes) {
      if (!wanted.has(key)) {
        this.resizeObserver.unobserve(node);
        node.remove();
        this.nodes.delete(key);
      }
    }
    // Insert in order, reusing mounted nodes: walk the wanted range against the DOM children.
    let cursor = this.container.firstChild;
    for (let i = start; i < end; i += 1) {
      const key = this.keys[i];
      let node = this.nodes.get(key);
      if (!node) {
        node = this.render(key, null);
        this.nodes.set(key, node);
        this.resizeObserver.observe(node);
      }
      if (node === cursor) cursor = cursor.nextSibling;
      else this.container.insertBefore(node, cursor);
    }
    // Measure (one layout for all mounted nodes: reads only, after all writes).
    let changed = false;
    for (let i = start; i < end; i += 1) {
      const key = this.keys[i];
      const height = this.nodes.get(key).offsetHeight;
      if (height && this.heights.get(key) !== height) {
        this.heights.set(key, height);
        changed = true;
      }
    }
    if (changed) {
      this.offsetsValid = false;
      this.computeOffsets();
    }
    this.container.style.paddingTop = `${this.offsets[start]}px`;
    this.container.style.paddingBottom = `${this.offsets[n] - this.offsets[end]}px`;
    this.ignoreScroll = true;
    if (this.stick) {
      s.scrollTop = s.scrollHeight;
    } else if (anchorKey !== null) {
      const anchor = this.keys.indexOf(anchorKey, Math.max(0, anchorIndex - 1));
      if (anchor >= 0) {
        const target = this.offsets[anchor] + anchorDelta;
        if (Math.abs(s.scrollTop - target) > 1) s.scrollTop = target;
      }
    }
    this.ignoreScroll = false;
    return changed;
  }
}
