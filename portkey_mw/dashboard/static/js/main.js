// The dashboard's entry point: sign-in, the time range, and the hash router
// (#overview, #logs?filters, #log/<id>, #costs?tag=key, #prompts, #prompt/<slug>?label=,
// #budgets).

import { ApiError, get, key, setKey } from "./api.js";
import { budgets } from "./budgets.js";
import { costs } from "./costs.js";
import { errorNotice, notice, replace } from "./dom.js";
import { detail, logs } from "./logs.js";
import { overview } from "./overview.js";
import { prompts, promptVersions } from "./prompts.js";

const RANGES = {
  "1h": { seconds: 3600, interval: 60, label: "The last hour" },
  "24h": { seconds: 86400, interval: 3600, label: "The last 24 hours" },
  "7d": { seconds: 7 * 86400, interval: 6 * 3600, label: "The last 7 days" },
  "30d": { seconds: 30 * 86400, interval: 86400, label: "The last 30 days" },
};
const RANGE_KEY = "portkey-mw.dashboard.range";

const $ = (id) => document.getElementById(id);
const view = $("view");
let rendering = 0;

function currentRange() {
  const choice = RANGES[$("range").value] || RANGES["24h"];
  const to = Date.now() / 1000;
  // buckets start on a multiple of the interval, so that refreshing does not shift them
  const from = Math.floor((to - choice.seconds) / choice.interval) * choice.interval;
  return { ...choice, from, to };
}

function navigate(target) {
  const next = `#${target}`;
  if (location.hash === next) render();
  else location.hash = next;
}

function route() {
  const hash = location.hash.slice(1) || "overview";
  const mark = hash.indexOf("?");
  const [path, query] = mark < 0 ? [hash, ""] : [hash.slice(0, mark), hash.slice(mark + 1)];
  if (path.startsWith("log/")) return { name: "logs", render: () => detail(view, decodeURIComponent(path.slice(4))) };
  const range = currentRange();
  if (path.startsWith("prompt/")) {
    const slug = decodeURIComponent(path.slice(7));
    return { name: "prompts", render: () => promptVersions(view, range, slug, query, navigate) };
  }
  switch (path) {
    case "logs":
      return { name: "logs", render: () => logs(view, range, query, navigate) };
    case "costs":
      return { name: "costs", render: () => costs(view, range, query, navigate) };
    case "prompts":
      return { name: "prompts", render: () => prompts(view, range) };
    case "budgets":
      return { name: "budgets", render: () => budgets(view) };
    default:
      return { name: "overview", render: () => overview(view, range) };
  }
}

async function render() {
  if (!key()) return showSignIn();
  const token = ++rendering;
  const current = route();
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.dataset.view === current.name);
  }
  view.setAttribute("aria-busy", "true");
  replace(view, notice("Loading…"));
  let parts;
  try {
    parts = await current.render();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      setKey(null);
      return showSignIn("The gateway refused the key: " + error.message);
    }
    parts = [errorNotice(error)];
  }
  if (token !== rendering) return; // a later render started meanwhile
  replace(view, parts);
  view.setAttribute("aria-busy", "false");
  view.dataset.view = current.name;
}

function showSignIn(message = "") {
  $("nav").hidden = true;
  $("controls").hidden = true;
  replace(view);
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message;
  $("key").focus();
}

async function signIn(event) {
  event.preventDefault();
  const value = $("key").value.trim();
  if (!value) return;
  setKey(value);
  try {
    await get("v1/logs", [["page_size", 1]]); // does the gateway take the key?
  } catch (error) {
    setKey(null);
    $("sign-in-error").textContent = `The gateway refused the key: ${error.message}`;
    return;
  }
  $("key").value = "";
  showApp();
}

function showApp() {
  $("sign-in").hidden = true;
  $("nav").hidden = false;
  $("controls").hidden = false;
  render();
}

function start() {
  const saved = sessionStorage.getItem(RANGE_KEY);
  if (saved && RANGES[saved]) $("range").value = saved;
  $("sign-in").addEventListener("submit", signIn);
  $("range").addEventListener("change", () => {
    sessionStorage.setItem(RANGE_KEY, $("range").value);
    render();
  });
  $("refresh").addEventListener("click", () => render());
  $("sign-out").addEventListener("click", () => {
    setKey(null);
    showSignIn();
  });
  window.addEventListener("hashchange", () => render());
  if (key()) showApp();
  else showSignIn();
}

start();
