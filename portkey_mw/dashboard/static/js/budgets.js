// Budgets: every budget and rate limit with its usage this period (GET /v1/admin/budgets,
// which needs the admin key).

import { ApiError, get } from "./api.js";
import { fmt, h, notice } from "./dom.js";

function amount(type, value) {
  return type === "cost" ? fmt.usd(value) : `${fmt.int(value)} tokens`;
}

function usage(budget) {
  if (!budget) return "no budget (rate limits only)";
  if (budget.credit_limit === null || budget.credit_limit === undefined) return `${amount(budget.type, budget.used)} used (no limit)`;
  const parts = [
    h("progress", { max: budget.credit_limit, value: Math.min(budget.used, budget.credit_limit) }),
    " ",
    `${amount(budget.type, budget.used)} of ${amount(budget.type, budget.credit_limit)}`,
  ];
  if (budget.exhausted) parts.push(" ", h("span", { class: "exhausted" }, "exhausted"));
  return h("span", {}, parts);
}

export async function budgets() {
  let answer;
  try {
    answer = await get("v1/admin/budgets");
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
      return [notice("Budgets are shown to the admin key only: sign in with it to see them.")];
    }
    throw error;
  }
  if (!answer.data.length) return [notice("No API key, virtual key or metadata budget has a budget or rate limits.")];
  const rows = answer.data.map((u) =>
    h(
      "tr",
      { "data-subject": u.subject },
      h("td", {}, u.kind),
      h("td", {}, u.name ?? u.ref),
      h("td", {}, usage(u.budget)),
      h("td", {}, u.budget && u.budget.remaining !== null ? amount(u.budget.type, u.budget.remaining) : "–"),
      h("td", {}, u.budget && u.budget.next_reset ? new Date(u.budget.next_reset).toLocaleString() : "–"),
      h("td", {}, (u.rate_limits || []).map((r) => r.description).join(", ") || "–"),
    ),
  );
  const parts = [
    h(
      "section",
      { class: "card" },
      h("h3", {}, `Budgets (${answer.backend}${answer.degraded ? ", degraded" : ""})`),
      h(
        "table",
        { "data-table": "budgets" },
        h("thead", {}, h("tr", {}, ["kind", "name", "used this period", "remaining", "next reset", "rate limits"].map((c) => h("th", {}, c)))),
        h("tbody", {}, rows),
      ),
    ),
  ];
  if (answer.invalid && answer.invalid.length) {
    parts.push(
      h(
        "section",
        { class: "card" },
        h("h3", {}, "Unreadable limits"),
        h("ul", {}, answer.invalid.map((i) => h("li", {}, `${i.kind} ${i.ref}: ${i.message}`))),
      ),
    );
  }
  return parts;
}
