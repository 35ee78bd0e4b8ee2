// Logs: the table (paged by the server, GET /v1/logs), its filters, and one request's
// detail (GET /v1/logs/{id}). Record content is shown as text only.

import { get, rangeParams } from "./api.js";
import { EMPTY_STORE, fmt, h, notice, recordTime } from "./dom.js";

const PAGE_SIZE = 50;
const FIELDS = [
  ["provider", "Provider"],
  ["model", "Model"],
  ["status", "Status"],
  ["virtual_key", "Virtual key"],
  ["api_key_id", "API key id"],
  ["q", "Text in bodies"],
];
// Header names whose values are credentials: never shown, even if a record held one.
const SECRET_HEADER = /authorization|api-key|apikey|secret|token|cookie|password|signature|credential/i;

// The filters live in the location hash (#logs?provider=...&metadata.team=a&page=2), so a
// filtered view can be reloaded and shared (without the key).
export function logsState(query) {
  const params = new URLSearchParams(query);
  return { params, page: Number(params.get("page") || 0) };
}

function statusClass(status) {
  return status >= 200 && status < 400 ? "status-ok" : "status-bad";
}

function tags(metadata) {
  const entries = Object.entries(metadata || {});
  if (!entries.length) return "";
  return h("span", { class: "tags" }, entries.map(([k, v]) => h("span", {}, `${k}=${v}`)));
}

function filterForm(state, onApply) {
  const inputs = FIELDS.map(([name, label]) =>
    h("label", {}, label, h("input", { name, value: state.params.get(name) || "", "data-filter": name })),
  );
  const metadata = [...state.params.entries()].filter(([k]) => k.startsWith("metadata."));
  const [mk, mv] = metadata.length ? [metadata[0][0].slice(9), metadata[0][1]] : ["", ""];
  const metaKey = h("input", { name: "metadata_key", value: mk, placeholder: "key", "data-filter": "metadata-key" });
  const metaValue = h("input", { name: "metadata_value", value: mv, placeholder: "value", "data-filter": "metadata-value" });
  const form = h(
    "form",
    { class: "filters", "data-form": "log-filters" },
    inputs,
    h("label", {}, "Metadata key", metaKey),
    h("label", {}, "Metadata value", metaValue),
    h("button", { type: "submit" }, "Filter"),
    h("button", { type: "reset" }, "Clear"),
  );
  const collect = () => {
    const params = new URLSearchParams();
    for (const [name] of FIELDS) {
      const value = form.elements[name].value.trim();
      if (value) params.set(name, value);
    }
    // further metadata filters from the hash are kept; the form edits the first one
    for (const [k, v] of metadata.slice(1)) params.set(k, v);
    if (metaKey.value.trim()) params.set(`metadata.${metaKey.value.trim()}`, metaValue.value);
    return params;
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onApply(collect());
  });
  form.addEventListener("reset", (event) => {
    event.preventDefault();
    onApply(new URLSearchParams());
  });
  return form;
}

function row(record) {
  const open = () => {
    location.hash = `#log/${encodeURIComponent(record.id)}`;
  };
  return h(
    "tr",
    { class: "row", tabindex: "0", "data-id": record.id, on: { click: open, keydown: (e) => e.key === "Enter" && open() } },
    h("td", {}, fmt.time(recordTime(record))),
    h("td", { class: statusClass(record.status) }, String(record.status)),
    h("td", {}, record.provider ?? "–"),
    h("td", {}, record.model ?? "–"),
    h("td", { class: "num" }, fmt.ms(record.latency_ms)),
    h("td", { class: "num" }, fmt.int(record.total_tokens)),
    h("td", { class: "num" }, fmt.usd(record.cost_usd)),
    h("td", {}, record.cache_status ?? ""),
    h("td", {}, tags(record.metadata)),
  );
}

export async function logs(view, range, query, navigate) {
  const state = logsState(query);
  const params = [...rangeParams(range), ...state.params.entries()].filter(([k]) => k !== "page");
  params.push(["page", state.page], ["page_size", PAGE_SIZE]);
  const answer = await get("v1/logs", params);
  const apply = (next) => navigate(`logs${next.toString() ? "?" + next.toString() : ""}`);
  const form = filterForm(state, apply);
  const filtered = [...state.params.keys()].some((k) => k !== "page");
  if (!answer.total) {
    let message = `No requests match in ${range.label.toLowerCase()}.`;
    if (!filtered) {
      const ever = await get("v1/logs", [["page_size", 1]]);
      message = ever.total ? `No requests in ${range.label.toLowerCase()}.` : EMPTY_STORE;
    }
    return [h("section", { class: "card" }, form), notice(message)];
  }
  const pages = Math.max(1, Math.ceil(answer.total / PAGE_SIZE));
  const go = (page) => {
    const next = new URLSearchParams(state.params);
    next.set("page", String(page));
    apply(next);
  };
  const table = h(
    "table",
    { "data-table": "logs" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["Time", "Status", "Provider", "Model"].map((c) => h("th", {}, c)),
        ["Latency", "Tokens", "Cost"].map((c) => h("th", { class: "num" }, c)),
        h("th", {}, "Cache"),
        h("th", {}, "Metadata"),
      ),
    ),
    h("tbody", {}, answer.data.map(row)),
  );
  return [
    h("section", { class: "card" }, form),
    h(
      "section",
      { class: "card" },
      h("h3", { "data-count": answer.total }, `${fmt.int(answer.total)} requests`),
      table,
      h(
        "div",
        { class: "pager" },
        h("button", { type: "button", disabled: state.page <= 0, on: { click: () => go(state.page - 1) } }, "Previous"),
        h("span", {}, `Page ${state.page + 1} of ${pages}`),
        h("button", { type: "button", disabled: state.page + 1 >= pages, on: { click: () => go(state.page + 1) } }, "Next"),
      ),
    ),
  ];
}

function fields(pairs) {
  return h(
    "dl",
    { class: "fields" },
    pairs.filter(([, v]) => v !== null && v !== undefined && v !== "").flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))]),
  );
}

function body(value, name) {
  if (value === null || value === undefined) return null;
  const text = typeof value === "string" ? value : JSON.stringify(value, null, 2);
  return h("div", {}, h("h3", {}, name), h("pre", { "data-body": name }, text));
}

function headers(record) {
  const sets = [
    ["Request headers", record.request_headers],
    ["Response headers", record.response_headers],
  ].filter(([, v]) => v && typeof v === "object");
  if (!sets.length) {
    return fields([
      ["x-portkey-request-id", record.request_id],
      ["x-portkey-trace-id", record.trace_id],
      ["x-portkey-span-id", record.span_id],
      ["x-portkey-parent-span-id", record.parent_span_id],
      ["x-portkey-span-name", record.span_name],
      ["x-portkey-cache-status", record.cache_status],
    ]);
  }
  return sets.map(([title, values]) =>
    h(
      "div",
      {},
      h("h3", {}, title),
      fields(Object.entries(values).map(([k, v]) => [k, SECRET_HEADER.test(k) ? "(hidden)" : v])),
    ),
  );
}

function attempts(record) {
  if (!Array.isArray(record.attempts)) return h("p", { class: "empty" }, "This record has no attempt trail.");
  const list = record.attempts;
  if (!list.length) return h("p", { class: "empty" }, "No provider was called (answered by the gateway).");
  const cols = ["target", "provider", "status", "error_type", "error_code", "latency_ms"];
  return h(
    "table",
    { "data-table": "attempts" },
    h("thead", {}, h("tr", {}, h("th", {}, "#"), cols.map((c) => h("th", {}, c)))),
    h(
      "tbody",
      {},
      list.map((a, i) =>
        h(
          "tr",
          {},
          h("td", {}, String(i + 1)),
          cols.map((c) => h("td", {}, c === "latency_ms" ? fmt.ms(a[c]) : a[c] ?? "–")),
        ),
      ),
    ),
  );
}

function feedback(list) {
  if (!list || !list.length) return h("p", { class: "empty" }, "No feedback for this request.");
  return h(
    "table",
    { "data-table": "feedback" },
    h("thead", {}, h("tr", {}, ["value", "weight", "metadata", "created"].map((c) => h("th", {}, c)))),
    h(
      "tbody",
      {},
      list.map((f) =>
        h(
          "tr",
          {},
          h("td", {}, String(f.value ?? "–")),
          h("td", {}, String(f.weight ?? "–")),
          h("td", {}, tags(f.metadata)),
          h("td", {}, f.created_at ? String(f.created_at) : "–"),
        ),
      ),
    ),
  );
}

export async function detail(view, id) {
  const record = await get(`v1/logs/${encodeURIComponent(id)}`);
  const usage = record.usage || {};
  const tokens = record.tokens || { input: usage.prompt_tokens, output: usage.completion_tokens, total: usage.total_tokens };
  const bodies = [body(record.request_body, "Request body"), body(record.response_body, "Response body")].filter(Boolean);
  return [
    h("a", { href: "#logs", class: "back" }, "← Logs"),
    h(
      "section",
      { class: "card", "data-detail": record.request_id ?? id },
      h("h2", {}, `Request ${record.request_id ?? id}`),
      fields([
        ["time", fmt.time(record.started_at)],
        ["status", record.status],
        ["endpoint", `${record.method} ${record.path}`],
        ["provider", record.provider],
        ["model", record.model],
        ["served model", record.served_model],
        ["target", record.target],
        ["stream", record.stream],
        ["latency", fmt.ms(record.latency_ms)],
        ["upstream", record.upstream_ms == null ? null : fmt.ms(record.upstream_ms)],
        ["time to first byte", record.ttfb_ms == null ? null : fmt.ms(record.ttfb_ms)],
        ["tokens (in / out / total)", `${fmt.int(tokens.input)} / ${fmt.int(tokens.output)} / ${fmt.int(tokens.total)}`],
        ["cost", fmt.usd(record.cost_usd)],
        ["cache", record.cache_status],
        ["retries", record.retry_count],
        ["fallback", record.fallback],
        ["API key id", record.api_key_id],
        ["virtual key", record.virtual_key],
        ["config", record.config_id],
        ["prompt", record.prompt_id && `${record.prompt_id} v${record.prompt_version ?? "?"}`],
        ["error", record.error_type && `${record.error_type}: ${record.error_code ?? ""} ${record.error_message ?? ""}`],
      ]),
    ),
    h("section", { class: "card" }, h("h3", {}, "Attempts"), attempts(record)),
    h("section", { class: "card" }, h("h3", {}, "Metadata"), tags(record.metadata) || h("p", { class: "empty" }, "None.")),
    h("section", { class: "card" }, h("h3", {}, "Headers"), headers(record)),
    record.hook_results ? h("section", { class: "card" }, body(record.hook_results, "Guardrail results")) : null,
    h(
      "section",
      { class: "card" },
      bodies.length ? bodies : h("p", { class: "empty" }, "Bodies were not stored for this request (logging.bodies)."),
    ),
    h("section", { class: "card" }, h("h3", {}, "Feedback"), feedback(record.feedback)),
  ];
}
