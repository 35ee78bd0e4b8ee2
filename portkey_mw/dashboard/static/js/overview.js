// Overview: totals, series over the chosen range, latency percentiles by model and by
// provider, cache hit rate, fallbacks and guardrail denials. Everything is aggregated by
// the server (GET /v1/logs/stats); the page draws what it gets.

import { get, rangeParams } from "./api.js";
import { barChart, seriesChart } from "./charts.js";
import { EMPTY_STORE, fmt, h, notice } from "./dom.js";

// Portkey answers a request a guardrail denied with 446.
const GUARDRAIL_DENIED = 446;

function total(label, value, name) {
  return h("div", { class: "total", "data-total": name }, h("div", { class: "label" }, label), h("div", { class: "value" }, value));
}

function card(title, ...body) {
  return h("section", { class: "card" }, h("h3", {}, title), ...body);
}

function percentiles(groups, by) {
  if (!groups.length) return h("p", { class: "empty" }, "No data in this range.");
  const items = groups.map((g) => ({
    label: String(g.key ?? "(none)"),
    values: [
      { v: g.latency_p50_ms, className: "p50", name: "p50" },
      { v: g.latency_p90_ms, className: "p90", name: "p90" },
      { v: g.latency_p99_ms, className: "p99", name: "p99" },
    ],
  }));
  const table = h(
    "table",
    { "data-table": `latency-${by}` },
    h("thead", {}, h("tr", {}, h("th", {}, by), ...["requests", "p50", "p90", "p99"].map((c) => h("th", { class: "num" }, c)))),
    h(
      "tbody",
      {},
      groups.map((g) =>
        h(
          "tr",
          {},
          h("td", {}, String(g.key ?? "(none)")),
          h("td", { class: "num" }, fmt.int(g.requests)),
          h("td", { class: "num" }, fmt.ms(g.latency_p50_ms)),
          h("td", { class: "num" }, fmt.ms(g.latency_p90_ms)),
          h("td", { class: "num" }, fmt.ms(g.latency_p99_ms)),
        ),
      ),
    ),
  );
  const legend = h("div", { class: "legend" }, ["p50", "p90", "p99"].map((p) => h("span", {}, h("i", { class: p }), p)));
  return [barChart(items, { label: `Latency percentiles by ${by}`, name: `latency-${by}`, format: fmt.ms }), legend, table];
}

export async function overview(view, range) {
  const common = rangeParams(range);
  // the denials are a count of one indexed status: a page of one row says how many
  const [byModel, byProvider, denials] = await Promise.all([
    get("v1/logs/stats", [...common, ["group_by", "model"], ["interval", range.interval]]),
    get("v1/logs/stats", [...common, ["group_by", "provider"]]),
    get("v1/logs", [...common, ["status", GUARDRAIL_DENIED], ["page_size", 1]]),
  ]);
  const totals = byModel.totals;
  if (!totals.requests) {
    // Nothing in the range: say whether anything was ever logged.
    const ever = await get("v1/logs", [["page_size", 1]]);
    return [notice(ever.total ? `No requests in ${range.label.toLowerCase()}.` : EMPTY_STORE)];
  }
  const denied = denials.total;
  const series = byModel.series || [];
  const points = (field) => series.map((b) => ({ t: b.t, v: b[field] }));
  const hitRate = totals.cache_lookups ? totals.cache_hit_rate : null;
  return [
    h(
      "div",
      { class: "totals" },
      total("Requests", fmt.int(totals.requests), "requests"),
      total("Errors", `${fmt.int(totals.errors)} (${fmt.pct(totals.error_rate)})`, "errors"),
      total("Cost", fmt.usd(totals.cost_usd), "cost"),
      total("Saved by cache", fmt.usd(totals.cost_saved_usd), "saved"),
      total("Tokens", fmt.int(totals.total_tokens), "tokens"),
      total("Latency p50 / p99", `${fmt.ms(totals.latency_p50_ms)} / ${fmt.ms(totals.latency_p99_ms)}`, "latency"),
      total("Cache hit rate", hitRate === null ? "no lookups" : fmt.pct(hitRate), "cache"),
      total("Fallbacks", fmt.int(totals.fallbacks), "fallbacks"),
      total("Guardrail denied", fmt.int(denied), "guardrail-denied"),
    ),
    h(
      "div",
      { class: "grid" },
      card("Requests", seriesChart(points("requests"), { label: "Requests", name: "requests", kind: "bar", format: fmt.int })),
      card("Errors", seriesChart(points("errors"), { label: "Errors", name: "errors", kind: "bar", className: "errors", format: fmt.int })),
      card("Cost (USD)", seriesChart(points("cost_usd"), { label: "Cost", name: "cost", format: fmt.usd })),
      card("Tokens", seriesChart(points("total_tokens"), { label: "Tokens", name: "tokens", format: fmt.int })),
      card(
        "Cache hits",
        seriesChart(points("cache_hits"), { label: "Cache hits", name: "cache-hits", kind: "bar", format: fmt.int }),
      ),
      card("Fallbacks", seriesChart(points("fallbacks"), { label: "Fallbacks", name: "fallbacks", kind: "bar", format: fmt.int })),
      card("Latency by model", percentiles(byModel.groups, "model")),
      card("Latency by provider", percentiles(byProvider.groups, "provider")),
    ),
  ];
}
