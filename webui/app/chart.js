// Charts from plot data as inline SVG: no charting library, no script in the data.
//
// Accepted shapes (a subset of Plotly's figure JSON, which is what Python code usually has):
//   {data: [{x: [...], y: [...], type: "scatter"|"bar"|"line", mode?: "markers"|"lines", name?}],
//    layout?: {title?: string | {text}}}
// or the shorthand {x: [...], y: [...], type?}. Anything else is shown as JSON text.
import { svg, h } from "./dom.js";

const W = 480;
const H = 260;
const PAD = { left: 48, right: 12, top: 28, bottom: 36 };
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2"];

function traces(spec) {
  if (spec && Array.isArray(spec.data)) return spec.data;
  if (spec && Array.isArray(spec.y)) return [spec];
  return null;
}

function ticks(min, max, count = 5) {
  if (min === max) return [min];
  const step = (max - min) / (count - 1);
  return Array.from({ length: count }, (_, i) => min + i * step);
}

function fmt(v) {
  if (typeof v !== "number") return String(v);
  return Math.abs(v) >= 1000 || Number.isInteger(v) ? String(Math.round(v)) : v.toFixed(2);
}

export function renderChart(spec, label) {
  const data = traces(spec);
  if (!data || !data.length) {
    return h("pre", { class: "el-plot-raw" }, JSON.stringify(spec ?? null, null, 2));
  }
  const series = data.map((trace, i) => {
    const y = (trace.y || []).map(Number);
    const x = Array.isArray(trace.x) ? trace.x : y.map((_, j) => j);
    return { x, y, type: trace.type || "scatter", mode: trace.mode || "lines+markers", name: trace.name || `series ${i + 1}`, color: COLORS[i % COLORS.length] };
  });
  const numericX = series.every((s) => s.x.every((v) => typeof v === "number"));
  const categories = numericX ? null : [...new Set(series.flatMap((s) => s.x.map(String)))];
  const allY = series.flatMap((s) => s.y.filter(Number.isFinite));
  const yMin = Math.min(0, ...allY);
  const yMax = Math.max(...allY, yMin + 1);
  const allX = numericX ? series.flatMap((s) => s.x) : [0, Math.max(0, categories.length - 1)];
  const xMin = Math.min(...allX);
  const xMax = Math.max(...allX, xMin + 1);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const sx = (v) => {
    const value = numericX ? v : categories.indexOf(String(v));
    const span = numericX ? xMax - xMin : Math.max(1, categories.length);
    const offset = numericX ? value - xMin : value + 0.5;
    return PAD.left + (offset / span) * plotW;
  };
  const sy = (v) => PAD.top + plotH - ((v - yMin) / (yMax - yMin)) * plotH;

  const children = [];
  const title = spec.layout && (typeof spec.layout.title === "string" ? spec.layout.title : spec.layout.title?.text);
  if (title) children.push(svg("text", { x: W / 2, y: 18, "text-anchor": "middle", class: "chart-title" }, title));
  for (const v of ticks(yMin, yMax)) {
    children.push(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: sy(v), y2: sy(v), class: "chart-grid" }));
    children.push(svg("text", { x: PAD.left - 6, y: sy(v) + 4, "text-anchor": "end", class: "chart-tick" }, fmt(v)));
  }
  const xLabels = numericX ? ticks(xMin, xMax) : categories;
  for (const v of xLabels) {
    children.push(svg("text", { x: sx(v), y: H - PAD.bottom + 16, "text-anchor": "middle", class: "chart-tick" }, fmt(v)));
  }
  const bars = series.filter((s) => s.type === "bar");
  series.forEach((s) => {
    if (s.type === "bar") {
      const slot = plotW / Math.max(1, numericX ? s.x.length : categories.length);
      const width = (slot * 0.8) / bars.length;
      const k = bars.indexOf(s);
      s.x.forEach((xv, j) => {
        const x = sx(xv) - (slot * 0.8) / 2 + k * width;
        const y0 = sy(Math.max(0, yMin));
        const y1 = sy(s.y[j]);
        children.push(svg("rect", { x, y: Math.min(y0, y1), width: Math.max(1, width - 1), height: Math.abs(y0 - y1), fill: s.color }, svg("title", {}, `${s.name}: ${fmt(xv)}, ${fmt(s.y[j])}`)));
      });
      return;
    }
    if (s.mode.includes("lines") || s.type === "line") {
      const points = s.x.map((xv, j) => `${sx(xv).toFixed(1)},${sy(s.y[j]).toFixed(1)}`).join(" ");
      children.push(svg("polyline", { points, fill: "none", stroke: s.color, "stroke-width": 2 }));
    }
    if (s.mode.includes("markers")) {
      s.x.forEach((xv, j) => children.push(svg("circle", { cx: sx(xv), cy: sy(s.y[j]), r: 3, fill: s.color }, svg("title", {}, `${s.name}: ${fmt(xv)}, ${fmt(s.y[j])}`))));
    }
  });
  if (series.length > 1) {
    series.forEach((s, i) => {
      children.push(svg("rect", { x: PAD.left + i * 110, y: H - 14, width: 10, height: 10, fill: s.color }));
      children.push(svg("text", { x: PAD.left + i * 110 + 14, y: H - 5, class: "chart-tick" }, s.name));
    });
  }
  // role="img" + a label: screen readers get one sentence, not hundreds of SVG nodes.
  return svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "el-chart", role: "img", "aria-label": title ? `${label}. ${title}` : label }, children);
}
