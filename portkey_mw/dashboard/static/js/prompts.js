// Prompts: the prompt library (GET /v1/prompts, with each prompt's requests in the range
// from GET /v1/analytics/groups/prompts), and one prompt's versions with their outcomes
// side by side (GET /v1/analytics/groups/prompt-versions), so an A/B split can be judged.

import { ApiError, get } from "./api.js";
import { barChart } from "./charts.js";
import { fmt, h, notice } from "./dom.js";

// Portkey's analytics take the range as time_of_generation_min/_max (epoch seconds here).
function windowParams(range) {
  return [
    ["time_of_generation_min", Math.floor(range.from)],
    ["time_of_generation_max", Math.ceil(range.to)],
  ];
}

// "production: v1 70% · v2 30%" for each label of a prompt.
function splits(labels, names) {
  if (!labels.length) return "–";
  return labels
    .map((label) => {
      const versions = label.versions || [];
      const total = versions.reduce((sum, v) => sum + (v.weight ?? 1), 0) || 1;
      const parts = versions.map((v) => (versions.length > 1 ? `v${v.version} ${fmt.num((100 * (v.weight ?? 1)) / total)}%` : `v${v.version}`));
      return `${names.get(label.label_id) || label.label_id}: ${parts.join(" · ")}`;
    })
    .join("; ");
}

function refused(error) {
  return error instanceof ApiError && (error.status === 401 || error.status === 403);
}

export async function prompts(view, range) {
  let listed;
  try {
    listed = await get("v1/prompts", [["page_size", 200]]);
  } catch (error) {
    if (refused(error)) return [notice("Listing prompts needs the prompts.list scope: sign in with a key that holds it.")];
    throw error;
  }
  if (!listed.data.length) return [notice("No prompts yet. Create one with POST /v1/prompts (the portkey-ai SDK's prompts.create).")];
  const [labels, traffic] = await Promise.all([
    get("v1/labels", [["page_size", 200]]).catch(() => ({ data: [] })),
    get("v1/analytics/groups/prompts", [...windowParams(range), ["page_size", 200]]).catch(() => ({ data: [] })),
  ]);
  const names = new Map(labels.data.map((l) => [l.id, l.name]));
  const requests = new Map(traffic.data.map((g) => [g.prompt_slug, g.requests]));
  const rows = listed.data.map((p) =>
    h(
      "tr",
      { class: "row", "data-slug": p.slug, on: { click: () => (location.hash = `#prompt/${encodeURIComponent(p.slug)}`) } },
      h("td", {}, h("a", { href: `#prompt/${encodeURIComponent(p.slug)}` }, p.slug)),
      h("td", {}, p.name),
      h("td", { class: "num" }, `v${p.default_version}`),
      h("td", { class: "num" }, p.latest_version === null || p.latest_version === undefined ? "–" : `v${p.latest_version}`),
      h("td", { "data-labels": "" }, splits(p.labels || [], names)),
      h("td", { class: "num" }, fmt.int(requests.get(p.slug) || 0)),
    ),
  );
  return [
    h(
      "section",
      { class: "card" },
      h("h3", { "data-count": listed.total }, `Prompts (${fmt.int(listed.total)})`),
      h(
        "table",
        { "data-table": "prompts" },
        h(
          "thead",
          {},
          h("tr", {}, h("th", {}, "slug"), h("th", {}, "name"), h("th", { class: "num" }, "published"), h("th", { class: "num" }, "latest"), h("th", {}, "labels and splits"), h("th", { class: "num" }, `requests (${range.label.toLowerCase()})`)),
        ),
        h("tbody", {}, rows),
      ),
    ),
  ];
}

// One version's row: every outcome in its own column, so versions compare down a column.
const COLUMNS = [
  ["requests", (v) => fmt.int(v.requests)],
  ["share", (v) => `${fmt.num(v.share)}%`],
  ["errors", (v) => `${fmt.int(v.errors)} (${fmt.pct(v.error_rate)})`],
  ["latency avg", (v) => fmt.ms(v.latency_avg_ms)],
  ["p50", (v) => fmt.ms(v.latency_p50_ms)],
  ["p90", (v) => fmt.ms(v.latency_p90_ms)],
  ["p99", (v) => fmt.ms(v.latency_p99_ms)],
  ["tokens", (v) => fmt.int(v.total_tokens)],
  ["tokens / request", (v) => fmt.num(v.avg_tokens)],
  ["cost", (v) => fmt.usd(v.cost_usd)],
  ["feedback", (v) => fmt.int(v.feedback_count)],
  ["feedback avg", (v) => fmt.num(v.feedback_avg)],
];

function deployedAs(version) {
  const labels = version.labels.map((l) => (l.share < 100 ? `${l.name} ${fmt.num(l.share)}%` : l.name));
  return [version.is_default ? "published" : null, ...labels].filter(Boolean).join(", ") || "–";
}

export async function promptVersions(view, range, slug, query, navigate) {
  const label = new URLSearchParams(query).get("label") || "";
  const answer = await get("v1/analytics/groups/prompt-versions", [
    ...windowParams(range),
    ["prompt_slug", slug],
    ["prompt_label", label],
    ["page_size", 200],
  ]);
  const labels = new Map();
  for (const version of answer.data) for (const l of version.labels) labels.set(l.label_id, l.name);
  const chooser = h(
    "select",
    {
      "data-filter": "prompt-label",
      on: { change: (e) => navigate(`prompt/${encodeURIComponent(slug)}${e.target.value ? `?label=${encodeURIComponent(e.target.value)}` : ""}`) },
    },
    h("option", { value: "" }, "every call"),
    [...labels].map(([id, name]) => h("option", { value: id, selected: id === label }, `through ${name}`)),
  );
  const versions = answer.data;
  const traffic = versions.filter((v) => v.requests > 0);
  const chart = traffic.length
    ? barChart(
        traffic.map((v) => ({ label: `v${v.version}`, values: [{ v: v.requests }] })),
        { label: "Requests by version", name: "prompt-version-requests", format: fmt.int },
      )
    : h("p", { class: "empty" }, `No calls of this prompt in ${range.label.toLowerCase()}.`);
  const table = h(
    "table",
    { "data-table": "prompt-versions" },
    h("thead", {}, h("tr", {}, h("th", {}, "version"), h("th", {}, "deployed as"), COLUMNS.map(([name]) => h("th", { class: "num" }, name)))),
    h(
      "tbody",
      {},
      versions.map((v) =>
        h(
          "tr",
          { "data-version": v.version },
          h("td", {}, `v${v.version}`),
          h("td", {}, deployedAs(v)),
          COLUMNS.map(([name, show]) => h("td", { class: "num", "data-field": name }, show(v))),
        ),
      ),
    ),
  );
  return [
    h("a", { class: "back", href: "#prompts" }, "← All prompts"),
    h(
      "section",
      { class: "card", "data-prompt": answer.prompt.slug },
      h("h3", {}, `${answer.prompt.name} (${answer.prompt.slug}) — ${fmt.int(answer.requests)} calls in ${range.label.toLowerCase()}`),
      h("label", {}, "Calls ", chooser),
      h("div", { class: "narrow" }, chart),
      table,
    ),
  ];
}
