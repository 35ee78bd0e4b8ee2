// Building elements. Record content (metadata, bodies, model names ...) only ever goes in
// as text nodes or attribute values set one by one: nothing here parses HTML.

const SVG_NS = "http://www.w3.org/2000/svg";

function append(parent, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else if (child instanceof Node) parent.appendChild(child);
    else parent.appendChild(document.createTextNode(String(child)));
  }
}

function setProps(el, props) {
  for (const [name, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "on") {
      for (const [event, handler] of Object.entries(value)) el.addEventListener(event, handler);
    } else if (name.startsWith("on")) {
      throw new Error(`event handlers go in "on", not as attribute ${name}`);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
}

// An HTML element: h("td", {class: "num"}, "12").
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  setProps(el, props);
  append(el, children);
  return el;
}

// An SVG element.
export function s(tag, props, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setProps(el, props);
  append(el, children);
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });

export const fmt = {
  int: (n) => (n === null || n === undefined ? "–" : integer.format(n)),
  num: (n) => (n === null || n === undefined ? "–" : decimal.format(n)),
  usd: (n) => {
    if (n === null || n === undefined) return "–";
    const digits = Math.abs(n) >= 0.01 || n === 0 ? 2 : 6;
    return "$" + n.toFixed(digits);
  },
  ms: (n) => (n === null || n === undefined ? "–" : `${decimal.format(n)} ms`),
  pct: (n) => (n === null || n === undefined ? "–" : `${decimal.format(n * 100)}%`),
  time: (epochSeconds) => new Date(epochSeconds * 1000).toLocaleString(),
  shortTime: (epochSeconds, span) => {
    const d = new Date(epochSeconds * 1000);
    if (span > 2 * 86400) return d.toLocaleDateString([], { month: "short", day: "numeric" });
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  },
};

// The time of a record: created_ms (a summary row) or started_at (a full record).
export function recordTime(record) {
  if (record.created_ms !== undefined && record.created_ms !== null) return record.created_ms / 1000;
  return record.started_at;
}

export function notice(text) {
  return h("p", { class: "notice" }, text);
}

export function errorNotice(error) {
  const status = error && error.status ? ` (${error.status})` : "";
  return h("p", { class: "error", role: "alert" }, `${error.message || error}${status}`);
}

// "No requests logged yet": the store holds no record at all.
export const EMPTY_STORE = "No requests logged yet. Send a request through the gateway and refresh.";
