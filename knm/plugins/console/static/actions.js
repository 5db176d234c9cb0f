// Cordon, uncordon or drain picked nodes, always in two steps: the k8s action runs first as a
// dry run (`params.dry_run`: nothing changes, no lock is taken) and its answer is shown — what
// each node would go through, the pods a drain would evict, the budgets that would block it, a
// lock or a hand cordon that would refuse it —; only then does Confirm run it for real, with the
// same options, and the panel follows that task to its end (its page is a link away).

import { request } from "./api.js";
import { h, link, problem } from "./dom.js";
import { statusBadge } from "./tasks.js";

const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const POLL_MS = 400;

const LOCK = { name: "wait_for_lock", type: "bool", label: "wait for another task's lock or a free max_unavailable slot" };
const OPTIONS = {
  cordon: [LOCK],
  uncordon: [{ name: "force", type: "bool", label: "also a node cordoned by hand (not by knm)" }],
  drain: [
    { name: "force", type: "bool", label: "evict pods no controller manages (they are gone for good)" },
    { name: "delete_emptydir_data", type: "bool", label: "evict pods with emptyDir volumes (their data is lost)" },
    { name: "grace_period", type: "int", label: "grace period per pod (s)", placeholder: "the pod's own" },
    { name: "drain_timeout", type: "int", label: "eviction time limit (s)", placeholder: "the node's timeout less a reserve" },
    { name: "on_timeout", type: "choice", choices: ["fail", "uncordon", "delete"], label: "pods left at the time limit" },
    LOCK,
  ],
};
// Lists a node's result may carry, with how the panel names them.
const DETAILS = [
  ["would_evict", "would evict"],
  ["blocking_budgets", "blocked for now by"],
  ["refused", "would refuse"],
  ["skipped", "left in place"],
  ["evicted", "evicted"],
  ["remaining", "still there"],
  ["deleted", "deleted"],
];

function title(action) {
  return action[0].toUpperCase() + action.slice(1);
}

export class NodeAction {
  constructor(slot, { cluster, action, nodes, onFinished }) {
    this.cluster = cluster;
    this.action = action;
    this.nodes = nodes;
    this.onFinished = onFinished;
    this.closed = false;
    this.inputs = {};
    this.build(slot);
    this.dryRun();
  }

  close() {
    this.closed = true;
    this.panel.remove();
  }

  build(slot) {
    const fields = OPTIONS[this.action].map((option) => this.field(option));
    this.timeout = h("input", { id: "opt-timeout", type: "number", min: "1", placeholder: "the k8s setting's" });
    this.timeout.addEventListener("input", () => this.changed());
    fields.push(h("label", {}, "time limit per node (s) ", this.timeout));
    this.dryButton = h("button", { type: "button", id: "action-dry-run", class: "secondary", onclick: () => this.dryRun() }, "Dry run again");
    this.confirmButton = h(
      "button",
      { type: "button", id: "action-confirm", class: this.action === "drain" ? "danger" : "", disabled: true, onclick: () => this.confirm() },
      `Confirm ${this.action}`,
    );
    this.closeButton = h("button", { type: "button", id: "action-close", class: "linkish", onclick: () => this.close() }, "Close");
    this.note = h("p", { id: "action-note", class: "muted" });
    this.problemSlot = h("div", { class: "slot", id: "action-problem" });
    this.dry = h("div", { id: "dry-run" });
    this.progress = h("div", { id: "action-progress" });
    this.panel = h(
      "section",
      { id: "action-panel", class: "card wide", dataset: { action: this.action } },
      h("h2", {}, `${title(this.action)} ${this.nodes.length} node${this.nodes.length === 1 ? "" : "s"}: ${this.nodes.join(", ")}`),
      h("p", { class: "muted" }, "A dry run comes first: nothing changes until you confirm."),
      h("fieldset", { id: "action-options" }, h("legend", {}, "Options"), fields),
      h("div", { class: "actions" }, this.dryButton, this.confirmButton, this.closeButton),
      this.note,
      this.problemSlot,
      this.dry,
      this.progress,
    );
    slot.replaceChildren(this.panel);
  }

  field(option) {
    let input;
    if (option.type === "bool") {
      input = h("input", { type: "checkbox", id: `opt-${option.name}` });
      this.inputs[option.name] = input;
      input.addEventListener("change", () => this.changed());
      return h("label", {}, input, ` ${option.name}: ${option.label}`);
    }
    if (option.type === "choice") {
      input = h("select", { id: `opt-${option.name}` }, option.choices.map((c) => h("option", { value: c }, c)));
      input.addEventListener("change", () => this.changed());
    } else {
      input = h("input", { type: "number", min: "0", id: `opt-${option.name}`, placeholder: option.placeholder || "" });
      input.addEventListener("input", () => this.changed());
    }
    this.inputs[option.name] = input;
    return h("label", {}, `${option.name}: ${option.label} `, input);
  }

  params() {
    const params = {};
    for (const option of OPTIONS[this.action]) {
      const input = this.inputs[option.name];
      if (option.type === "bool") {
        if (input.checked) params[option.name] = true;
      } else if (option.type === "choice") {
        if (input.value !== option.choices[0]) params[option.name] = input.value;
      } else if (input.value !== "") {
        params[option.name] = Number(input.value);
      }
    }
    return params;
  }

  body(dryRun) {
    const body = { cluster_name: this.cluster, target_nodes: this.nodes, action: this.action, params: this.params() };
    if (dryRun) body.params.dry_run = true;
    if (this.timeout.value !== "") body.timeout = Number(this.timeout.value);
    return body;
  }

  // Options changed since the dry run: what it showed no longer holds, so no Confirm until the
  // dry run is run again.
  changed() {
    if (this.running) return;
    this.confirmButton.disabled = true;
    this.note.textContent = "The options changed: run the dry run again to confirm with them.";
  }

  async dryRun() {
    this.problemSlot.replaceChildren();
    this.progress.replaceChildren();
    this.confirmButton.disabled = true;
    this.dryButton.disabled = true;
    this.note.textContent = "Dry run…";
    this.dry.replaceChildren(h("p", { class: "muted" }, "Asking the cluster what would happen…"));
    const snapshot = JSON.stringify(this.body(false));
    try {
      const started = await request("POST", "automation/k8s/execute", { body: this.body(true) });
      const task = await this.follow(started.task_id, () => {});
      if (this.closed) return;
      this.dry.replaceChildren(
        h("h3", {}, "Dry run: ", link(task.task_id, "tasks", task.task_id), " ", statusBadge(task.status)),
        resultsTable(task, "dry-run-results", this.nodes, true),
      );
      this.dry.scrollIntoView({ block: "nearest" });
      const refused = (task.results || []).filter((r) => r.status === "failed");
      const blocked = (task.results || []).filter((r) => (r.blocking_budgets || []).length);
      const notes = ["Nothing has changed yet."];
      if (refused.length) notes.push(`${refused.length} node(s) would fail: ${refused.map((r) => `${r.node} (${r.reason})`).join(", ")}.`);
      if (blocked.length) notes.push(`Disruption budgets would hold the drain of ${blocked.map((r) => r.node).join(", ")} until they allow it or the time limit passes.`);
      this.note.textContent = notes.join(" ");
      this.confirmed = snapshot;
      this.confirmButton.disabled = task.status === "cancelled";
    } catch (error) {
      if (this.closed) return;
      this.dry.replaceChildren();
      this.note.textContent = "";
      this.problemSlot.replaceChildren(problem(error));
    } finally {
      this.dryButton.disabled = false;
    }
  }

  async confirm() {
    const body = this.body(false);
    if (JSON.stringify(body) !== this.confirmed) {
      this.changed();
      return;
    }
    this.running = true;
    this.confirmButton.disabled = true;
    this.dryButton.disabled = true;
    this.problemSlot.replaceChildren();
    const status = h("span", { id: "action-status" });
    const log = h("ul", { id: "action-log", class: "log" });
    const results = h("div", { id: "action-results" });
    const line = h("p", { id: "action-task" }, `${title(this.action)}: `);
    this.progress.replaceChildren(h("h3", {}, "Running for real"), line, log, results);
    try {
      const started = await request("POST", "automation/k8s/execute", { body });
      line.append(link(started.task_id, "tasks", started.task_id), " ", status);
      this.note.textContent = "";
      const task = await this.follow(started.task_id, (now, events) => {
        status.replaceChildren(statusBadge(now.status));
        for (const event of events) {
          if (event.type === "progress" && event.message) log.append(h("li", {}, event.message));
        }
        while (log.childElementCount > 20) log.firstElementChild.remove();
        results.replaceChildren(resultsTable(now, "action-results-table", this.nodes, false));
      });
      this.progress.scrollIntoView({ block: "nearest" });
      if (this.closed) return;
      this.note.textContent = `${title(this.action)} ${task.status}: ${task.success_count} succeeded, ${task.failed_count} failed.`;
      if (this.onFinished) this.onFinished(task);
    } catch (error) {
      if (!this.closed) this.problemSlot.replaceChildren(problem(error));
    } finally {
      this.running = false;
      this.dryButton.disabled = false;
    }
  }

  // The task until it ends (status and new events every POLL_MS); `onUpdate(task, events)`.
  async follow(taskId, onUpdate) {
    const path = `tasks/${encodeURIComponent(taskId)}`;
    let since = 0;
    for (;;) {
      // The status first: the events read after it hold every one before its end.
      const task = await request("GET", path);
      const events = await request("GET", `${path}/events`, { query: { since } });
      for (const event of events.entries) since = Math.max(since, event.seq || 0);
      if (this.closed) return task;
      onUpdate(task, events.entries);
      if (TERMINAL.has(task.status)) return task;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }
}

// Each node's result; in a dry run a success is "ok" and a failure what would fail.
function resultsTable(task, id, nodes, dry) {
  const byNode = new Map((task.results || []).map((r) => [r.node, r]));
  return h(
    "table",
    { class: "results", id },
    h("thead", {}, h("tr", {}, ["node", "outcome", "reason", "what"].map((t) => h("th", {}, t)))),
    h(
      "tbody",
      {},
      nodes.map((node) => {
        const result = byNode.get(node);
        if (!result) return h("tr", { dataset: { node } }, h("td", {}, node), h("td", { class: "muted" }, "…"), h("td"), h("td"));
        return h(
          "tr",
          { dataset: { node }, class: `r-${result.status}` },
          h("td", {}, node),
          h("td", {}, h("span", { class: `badge ${result.status === "success" ? "s-completed" : "s-failed"}` }, dry ? (result.status === "success" ? "ok" : "would fail") : result.status)),
          h("td", { class: "reason" }, result.reason || ""),
          h(
            "td",
            { class: "message" },
            h("div", {}, result.message || ""),
            DETAILS.filter(([key]) => Array.isArray(result[key]) && result[key].length).map(([key, label]) =>
              h("div", { class: `detail ${key.replace(/_/g, "-")}` }, h("span", { class: "muted" }, `${label}: `), h("ul", {}, result[key].map((item) => h("li", {}, String(item))))),
            ),
          ),
        );
      }),
    ),
  );
}
