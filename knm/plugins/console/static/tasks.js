// A table of task rows (history rows of every kind), each linking to its live view.

import { h, link, seconds, when } from "./dom.js";

// What a row ran: the kind's display field (command, playbook, script, workflow).
export function what(row) {
  return row.command || row.playbook_name || row.script_name || row.workflow_name || row.action || "";
}

export function statusBadge(status) {
  return h("span", { class: `badge s-${status}` }, status);
}

export function taskTable(rows, empty = "No tasks.") {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h(
    "table",
    { class: "tasks" },
    h(
      "thead",
      {},
      h("tr", {}, ["task", "kind", "status", "cluster", "what", "nodes", "ok / failed", "started", "took", "by"].map((t) => h("th", {}, t))),
    ),
    h(
      "tbody",
      {},
      rows.map((row) =>
        h(
          "tr",
          { dataset: { task: row.task_id } },
          h("td", {}, link(row.task_id, "tasks", row.task_id)),
          h("td", {}, row.kind),
          h("td", {}, statusBadge(row.status)),
          h("td", {}, row.cluster_name),
          h("td", { class: "what" }, what(row)),
          h("td", { class: "num" }, (row.target_nodes || []).length),
          h("td", { class: "num" }, `${row.success_count} / ${row.failed_count}`),
          h("td", {}, when(row.start_time)),
          h("td", { class: "num" }, seconds(row.duration)),
          h("td", {}, row.username || ""),
        ),
      ),
    ),
  );
}
