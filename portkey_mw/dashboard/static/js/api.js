// The gateway's APIs, called with the key the user typed in (kept in this tab only).
// Every answer is JSON; an error answer's message is shown as text, never as HTML.

// This file is <root>/dashboard/static/js/api.js: the gateway's root is three levels up,
// which also holds when the gateway is mounted below a prefix.
const ROOT = new URL("../../../", import.meta.url);
const KEY = "portkey-mw.dashboard.key";

export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function key() {
  return sessionStorage.getItem(KEY);
}

export function setKey(value) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
}

// GET `path` (below the root, e.g. "v1/logs") with `params`: [name, value] pairs (values
// that are null, undefined or "" are left out).
export async function get(path, params = []) {
  const url = new URL(path, ROOT);
  for (const [name, value] of params) {
    if (value !== null && value !== undefined && value !== "") {
      url.searchParams.append(name, String(value));
    }
  }
  const response = await fetch(url, {
    headers: { "x-portkey-api-key": key() ?? "" },
    cache: "no-store",
    credentials: "omit",
    redirect: "error",
  });
  const text = await response.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  if (!response.ok) {
    const error = body && body.error ? body.error : {};
    throw new ApiError(response.status, error.message || `HTTP ${response.status}`, error.code);
  }
  return body;
}

// The query parameters of a time range: [from, to] in epoch seconds.
export function rangeParams(range) {
  return [
    ["from", Math.floor(range.from)],
    ["to", Math.ceil(range.to)],
  ];
}
