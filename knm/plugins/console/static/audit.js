// The audit log (admins): who did what to which target, from where, newest first, with the
// API's filters and paging kept in the URL (#/admin/audit?action=user&page=2), so a view of it
// is linkable.

import { request } from "./api.js";
import { pager, table } from "./adminkit.js";
import { h, problem, when } from "./dom.js";

const FIELDS = ["user", "action", "target", "start_date", "end_date", "page", "page_size"];

export async function auditView(main, _rest, params) {
  const query = {};
  for (const name of FIELDS) if (params.get(name)) query[name] = params.get(name);
  const page = Number(query.page || 1);
  const size = Number(query.page_size || 20);
  const inputs = {
    user: h("input", { id: "audit-user", name: "user", value: query.user || "", size: "12" }),
    action: h("input", { id: "audit-action", name: "action", value: query.action || "", size: "16", placeholder: "user, task.start…" }),
    target: h("input", { id: "audit-target", name: "target", value: query.target || "", size: "16" }),
    start_date: h("input", { id: "audit-start_date", name: "start_date", type: "date", value: query.start_date || "" }),
    end_date: h("input", { id: "audit-end_date", name: "end_date", type: "date", value: query.end_date || "" }),
    page_size: h("select", { id: "audit-page_size", name: "page_size" }, sizes(size).map((n) => h("option", { value: n, selected: n === String(size) }, n))),
  };
  const form = h(
    "form",
    { class: "filters", id: "audit-filters" },
    Object.entries(inputs).map(([name, input]) => h("label", {}, name.replace("_", " "), " ", input)),
    h("button", { type: "submit", id: "audit-apply" }, "Apply"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [name, input] of Object.entries(inputs)) {
      if (input.value && !(name === "page_size" && input.value === "20")) next.set(name, input.value);
    }
    window.location.hash = `#/admin/audit${next.toString() ? `?${next}` : ""}`;
  });
  const results = h("div", { id: "audit-results" }, h("p", { class: "muted" }, "Loading…"));
  main.append(h("h1", {}, "Audit log"), form, results);
  try {
    const data = await request("GET", "audit", { query });
    const go = (n) => {
      const next = new URLSearchParams(params);
      next.set("page", String(n));
      return `#/admin/audit?${next}`;
    };
    results.replaceChildren(
      table(
        "audit",
        ["when", "user", "role", "action", "target", "outcome", "client", "detail"],
        data.entries.map((e) =>
          h(
            "tr",
            { dataset: { action: e.action, target: e.target } },
            h("td", {}, when(e.at)),
            h("td", {}, e.username || ""),
            h("td", {}, e.role || ""),
            h("td", {}, h("code", {}, e.action)),
            h("td", {}, e.target),
            h("td", {}, e.outcome),
            h("td", {}, e.client),
            detail(e.detail),
          ),
        ),
        "No entries match.",
      ),
      pager("audit-pager", page, size, data.total, "entries", go),
    );
  } catch (error) {
    results.replaceChildren(problem(error));
  }
}

function detail(value) {
  const text = value && Object.keys(value).length ? JSON.stringify(value) : "";
  return h("td", { class: "what", title: text }, text);
}

// The page sizes offered, with the one in the URL among them.
function sizes(size) {
  return [...new Set([10, 20, 50, 100, size])].sort((a, b) => a - b).map(String);
}
