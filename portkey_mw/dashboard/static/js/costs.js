// Costs: spend grouped by provider, by virtual key and by a metadata key the user picks,
// each aggregated by the server (GET /v1/logs/stats?group_by=...).

import { get, rangeParams } from "./api.js";
import { barChart } from "./charts.js";
import { EMPTY_STORE, fmt, h, notice } from "./dom.js";

function breakdown(title, name, answer) {
  const groups = [...answer.groups].sort((a, b) => (b.cost_usd || 0) - (a.cost_usd || 0));
  if (!groups.length) return h("section", { class: "card" }, h("h3", {}, title), h("p", { class: "empty" }, "No data in this range."));
  const items = groups.map((g) => ({ label: String(g.key ?? "(none)"), values: [{ v: g.cost_usd || 0 }] }));
  return h(
    "section",
    { class: "card" },
    h("h3", {}, title),
    barChart(items, { label: title, name, format: fmt.usd }),
    h(
      "table",
      { "data-table": name },
      h("thead", {}, h("tr", {}, h("th", {}, "key"), ["requests", "tokens", "cost", "saved by cache"].map((c) => h("th", { class: "num" }, c)))),
      h(
        "tbody",
        {},
        groups.map((g) =>
          h(
            "tr",
            {},
            h("td", {}, String(g.key ?? "(none)")),
            h("td", { class: "num" }, fmt.int(g.requests)),
            h("td", { class: "num" }, fmt.int(g.total_tokens)),
            h("td", { class: "num" }, fmt.usd(g.cost_usd)),
            h("td", { class: "num" }, fmt.usd(g.cost_saved_usd)),
          ),
        ),
      ),
    ),
  );
}

// The metadata keys of the latest requests, to offer in the key chooser.
async function metadataKeys(range) {
  const recent = await get("v1/logs", [...rangeParams(range), ["page_size", 200]]);
  const keys = new Set();
  for (const record of recent.data) for (const key of Object.keys(record.metadata || {})) keys.add(key);
  return [...keys].sort();
}

export async function costs(view, range, query, navigate) {
  const common = rangeParams(range);
  const chosen = new URLSearchParams(query).get("tag") || "";
  const [byProvider, byVirtualKey, keys] = await Promise.all([
    get("v1/logs/stats", [...common, ["group_by", "provider"]]),
    get("v1/logs/stats", [...common, ["group_by", "virtual_key"]]),
    metadataKeys(range),
  ]);
  if (!byProvider.totals.requests) {
    const ever = await get("v1/logs", [["page_size", 1]]);
    return [notice(ever.total ? `No requests in ${range.label.toLowerCase()}.` : EMPTY_STORE)];
  }
  const tag = chosen || keys[0] || "";
  const select = h(
    "select",
    { "data-filter": "cost-tag", on: { change: (e) => navigate(`costs?tag=${encodeURIComponent(e.target.value)}`) } },
    keys.length ? null : h("option", { value: "" }, "(no metadata in this range)"),
    keys.map((k) => h("option", { value: k, selected: k === tag }, k)),
  );
  const parts = [
    h("p", {}, `Total ${fmt.usd(byProvider.totals.cost_usd)} over ${fmt.int(byProvider.totals.requests)} requests.`),
    h("div", { class: "grid" }, breakdown("Cost by provider", "cost-provider", byProvider), breakdown("Cost by virtual key", "cost-virtual-key", byVirtualKey)),
    h("section", { class: "card" }, h("label", {}, "Metadata key ", select)),
  ];
  if (tag) {
    const byTag = await get("v1/logs/stats", [...common, ["group_by", `metadata.${tag}`]]);
    parts.push(breakdown(`Cost by metadata ${tag}`, "cost-metadata", byTag));
  }
  return parts;
}
