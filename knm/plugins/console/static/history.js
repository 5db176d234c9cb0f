// Every task of every kind, newest first, with the API's filters and paging. The filters live
// in the URL (#/history?status=failed&page=2), so a view of the history is linkable.

import { all, request } from "./api.js";
import { h, problem } from "./dom.js";
import { taskTable } from "./tasks.js";

const STATUSES = ["", "pending", "running", "completed", "failed", "cancelled"];
const KINDS = ["ssh", "ansible", "script", "k8s", "workflow"];
const FIELDS = ["kind", "cluster_name", "status", "start_date", "end_date", "include_children", "page", "page_size"];

export async function historyView(main, params) {
  const query = {};
  for (const field of FIELDS) if (params.get(field)) query[field] = params.get(field);
  const page = Number(query.page || 1);
  const size = Number(query.page_size || 20);

  const choose = (id, options, current) =>
    h("select", { id, name: id }, options.map((o) => h("option", { value: o, selected: o === (current || "") }, o || "any")));
  let clusters = [];
  try {
    clusters = (await all("clusters", "clusters")).map((c) => c.name);
  } catch {
    clusters = [];
  }
  if (query.cluster_name && !clusters.includes(query.cluster_name)) clusters.push(query.cluster_name);
  // Any kind a plugin adds can be typed; knm's own are offered.
  const kind = h("input", { id: "kind", name: "kind", list: "kinds", value: query.kind || "", placeholder: "any", size: "10" });
  const inputs = {
    kind,
    cluster_name: choose("cluster_name", ["", ...clusters], query.cluster_name),
    status: choose("status", STATUSES, query.status),
    start_date: h("input", { id: "start_date", type: "date", value: query.start_date || "" }),
    end_date: h("input", { id: "end_date", type: "date", value: query.end_date || "" }),
    include_children: h("input", { id: "include_children", type: "checkbox", checked: query.include_children === "true" }),
    page_size: choose("page_size", ["10", "20", "50", "100"], String(size)),
  };
  const form = h(
    "form",
    { class: "filters", id: "history-filters" },
    Object.entries(inputs).map(([name, input]) => h("label", {}, name.replace("_", " "), " ", input)),
    h("button", { type: "submit", id: "history-apply" }, "Apply"),
    h("datalist", { id: "kinds" }, KINDS.map((k) => h("option", { value: k }))),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [name, input] of Object.entries(inputs)) {
      const value = input.type === "checkbox" ? (input.checked ? "true" : "") : input.value;
      if (value && !(name === "page_size" && value === "20")) next.set(name, value);
    }
    window.location.hash = `#/history${next.toString() ? `?${next}` : ""}`;
  });
  const results = h("section", { id: "history-results" }, h("p", { class: "muted" }, "Loading…"));
  main.append(h("h1", {}, "History"), form, results);

  try {
    const data = await request("GET", "tasks", { query });
    const pages = Math.max(1, Math.ceil(data.total / size));
    const go = (n) => {
      const next = new URLSearchParams(params);
      next.set("page", String(n));
      return `#/history?${next}`;
    };
    results.replaceChildren(
      taskTable(data.executions, "No tasks match."),
      h(
        "nav",
        { class: "pager", id: "pager" },
        page > 1 ? h("a", { href: go(page - 1), id: "page-prev" }, "← newer") : null,
        h("span", { id: "page-info" }, ` page ${page} of ${pages} (${data.total} tasks) `),
        page < pages ? h("a", { href: go(page + 1), id: "page-next" }, "older →") : null,
      ),
    );
  } catch (error) {
    results.replaceChildren(problem(error));
  }
}
