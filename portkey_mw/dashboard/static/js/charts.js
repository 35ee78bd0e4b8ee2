// Small inline-SVG charts: a time series (line or columns) and horizontal bars. Each mark
// carries a <title>, which the browser shows as its tooltip.

import { fmt, s } from "./dom.js";

const W = 560;
const H = 200;
const PAD = { left: 56, right: 12, top: 12, bottom: 28 };

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * power >= value) return step * power;
  }
  return 10 * power;
}

// A time series: points [{t, v}] (t epoch seconds), drawn as a line or as columns.
// options: {label, format(v), kind: "line" | "bar", className}
export function seriesChart(points, options) {
  const format = options.format || fmt.num;
  const kind = options.kind || "line";
  const max = niceMax(Math.max(0, ...points.map((p) => p.v || 0)));
  const innerW = W - PAD.left - PAD.right;
  const innerH = H - PAD.top - PAD.bottom;
  const n = Math.max(points.length, 1);
  const step = innerW / n;
  const x = (i) => PAD.left + step * i + step / 2;
  const y = (v) => PAD.top + innerH - (innerH * (v || 0)) / max;
  const span = points.length > 1 ? points[points.length - 1].t - points[0].t : 0;

  const svg = s("svg", {
    class: "chart",
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-label": options.label,
    "data-chart": options.name || options.label,
  });
  svg.appendChild(s("title", {}, options.label));
  // axes and the y ticks: 0, half, max
  svg.appendChild(s("line", { class: "axis", x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: H - PAD.bottom }));
  svg.appendChild(
    s("line", { class: "axis", x1: PAD.left, y1: H - PAD.bottom, x2: W - PAD.right, y2: H - PAD.bottom }),
  );
  for (const v of [0, max / 2, max]) {
    svg.appendChild(s("text", { class: "tick", x: PAD.left - 6, y: y(v) + 3, "text-anchor": "end" }, format(v)));
    if (v > 0) {
      svg.appendChild(s("line", { class: "axis", x1: PAD.left, y1: y(v), x2: W - PAD.right, y2: y(v) }));
    }
  }
  // x ticks: first, middle and last bucket
  const ticks = new Set([0, Math.floor((points.length - 1) / 2), points.length - 1]);
  for (const i of ticks) {
    if (i < 0 || !points[i]) continue;
    svg.appendChild(
      s("text", { class: "tick", x: x(i), y: H - PAD.bottom + 16, "text-anchor": "middle" }, fmt.shortTime(points[i].t, span)),
    );
  }
  const title = (p) => `${fmt.time(p.t)}: ${format(p.v || 0)}`;
  if (kind === "bar") {
    points.forEach((p, i) => {
      const top = y(p.v);
      const bar = s("rect", {
        class: `bar ${options.className || ""}`,
        x: x(i) - Math.max(step * 0.35, 0.5),
        y: top,
        width: Math.max(step * 0.7, 1),
        height: H - PAD.bottom - top,
        "data-value": p.v || 0,
      });
      bar.appendChild(s("title", {}, title(p)));
      svg.appendChild(bar);
    });
  } else {
    const path = points.map((p, i) => `${x(i)},${y(p.v)}`).join(" ");
    svg.appendChild(s("polyline", { class: "line", points: path }));
    points.forEach((p, i) => {
      const dot = s("circle", { class: "dot", cx: x(i), cy: y(p.v), r: points.length > 60 ? 1.5 : 2.5, "data-value": p.v || 0 });
      dot.appendChild(s("title", {}, title(p)));
      svg.appendChild(dot);
    });
  }
  // a hover target per bucket, so that a tooltip shows wherever the pointer is
  points.forEach((p, i) => {
    const hit = s("rect", { class: "hit", x: x(i) - step / 2, y: PAD.top, width: step, height: innerH });
    hit.appendChild(s("title", {}, title(p)));
    svg.appendChild(hit);
  });
  return svg;
}

// Horizontal bars: items [{label, values: [{v, className, name}]}], one row per item and
// one bar per value (p50/p90/p99 side by side, or a single cost).
export function barChart(items, options) {
  const format = options.format || fmt.num;
  const rowH = 14 * Math.max(1, ...items.map((item) => item.values.length)) + 10;
  const labelW = 150;
  const height = PAD.top + rowH * Math.max(items.length, 1) + 8;
  const innerW = W - labelW - 80;
  const max = niceMax(Math.max(0, ...items.flatMap((item) => item.values.map((v) => v.v || 0))));
  const svg = s("svg", {
    class: "chart",
    viewBox: `0 0 ${W} ${height}`,
    role: "img",
    "aria-label": options.label,
    "data-chart": options.name || options.label,
  });
  svg.appendChild(s("title", {}, options.label));
  items.forEach((item, row) => {
    const top = PAD.top + row * rowH;
    const label = item.label.length > 24 ? item.label.slice(0, 23) + "…" : item.label;
    svg.appendChild(s("text", { class: "label", x: labelW - 8, y: top + rowH / 2, "text-anchor": "end" }, label));
    item.values.forEach((value, i) => {
      const width = Math.max((innerW * (value.v || 0)) / max, 1);
      const y = top + 4 + i * 14;
      const bar = s("rect", { class: `bar ${value.className || ""}`, x: labelW, y, width, height: 12, "data-value": value.v || 0 });
      bar.appendChild(s("title", {}, `${item.label}${value.name ? " " + value.name : ""}: ${format(value.v || 0)}`));
      svg.appendChild(bar);
      svg.appendChild(s("text", { class: "tick", x: labelW + width + 4, y: y + 10 }, format(value.v || 0)));
    });
  });
  return svg;
}
