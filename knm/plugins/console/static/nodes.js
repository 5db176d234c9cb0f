// One cluster's nodes: labels, taints, Ready, schedulable, who cordoned (a knm task and its user,
// or by hand) and the locks tasks hold; filtered by name and label selector. Operators cordon,
// uncordon and drain the nodes they pick (actions.js): always a dry run first, then Confirm.

import { all, can, request } from "./api.js";
import { cordonOf, cordonedText, locksByCluster, summarize } from "./clusters.js";
import { h, link, problem, route } from "./dom.js";
import { NodeAction } from "./actions.js";

export async function clusterView(main, name, params) {
  let cluster;
  try {
    cluster = await request("GET", `clusters/${encodeURIComponent(name)}`);
  } catch (error) {
    main.append(h("h1", {}, `Cluster ${name}`), problem(error));
    return;
  }
  const view = new NodesView(main, cluster, params);
  await view.load();
  return () => view.close();
}

function chips(items, cls) {
  return items.map((text) => h("span", { class: `chip ${cls}` }, text));
}

function yesNo(value, yes, no) {
  if (value === true) return h("span", { class: "badge s-completed" }, yes);
  if (value === false) return h("span", { class: "badge s-failed" }, no);
  return h("span", { class: "muted" }, "—");
}

class NodesView {
  constructor(main, cluster, params) {
    this.cluster = cluster;
    this.name = cluster.name;
    this.selector = params.get("selector") || "";
    this.match = params.get("name") || "";
    this.picked = new Set();
    this.outcomes = new Map(); // node -> the last action's result seen on this page
    this.tasks = new Map(); // cordoning task id -> its row (user, kind), or null
    this.canAct = can("operator") && cluster.kind === "kubernetes";
    this.build(main);
  }

  close() {
    if (this.action) this.action.close();
  }

  build(main) {
    const cluster = this.cluster;
    this.summary = h("p", { id: "node-summary", class: "counts" });
    this.slot = h("div", { class: "slot", id: "nodes-problem" });
    this.body = h("tbody");
    const nameInput = h("input", { id: "node-name", type: "search", placeholder: "part of a name", value: this.match });
    const selectorInput = h("input", { id: "node-selector", type: "search", placeholder: "pool=a,!gpu", value: this.selector, spellcheck: "false" });
    const filter = h(
      "form",
      { class: "filters", id: "node-filter" },
      h("label", {}, "Name", nameInput),
      h("label", {}, "Label selector", selectorInput),
      h("button", { type: "submit", id: "node-filter-apply" }, "Filter"),
    );
    filter.addEventListener("submit", (event) => {
      event.preventDefault();
      const query = new URLSearchParams();
      if (nameInput.value.trim()) query.set("name", nameInput.value.trim());
      if (selectorInput.value.trim()) query.set("selector", selectorInput.value.trim());
      const text = query.toString();
      window.location.hash = route("clusters", this.name) + (text ? `?${text}` : "");
    });
    const headings = ["node", "Ready", "schedulable", "cordoned", "lock", "roles", "labels", "taints", "last action here"];
    this.table = h(
      "table",
      { class: "nodes", id: "node-table" },
      h("thead", {}, h("tr", {}, this.canAct ? h("th", {}, this.pickAll()) : null, headings.map((t) => h("th", {}, t)))),
      this.body,
    );
    main.append(
      h("p", {}, link("All clusters", "clusters")),
      h("h1", {}, `Cluster ${cluster.name}`),
      h("p", { class: "muted" }, `${cluster.kind}${cluster.description ? ` — ${cluster.description}` : ""}`),
      this.summary,
      filter,
    );
    if (this.canAct) {
      this.buttons = {};
      for (const [action, label] of [["cordon", "Cordon…"], ["uncordon", "Uncordon…"], ["drain", "Drain…"]]) {
        this.buttons[action] = h("button", { type: "button", id: `act-${action}`, disabled: true, onclick: () => this.open(action) }, label);
      }
      this.pickedLine = h("span", { id: "picked", class: "muted" }, "Pick nodes to act on.");
      main.append(h("div", { class: "actions", id: "node-actions" }, Object.values(this.buttons), this.pickedLine));
      this.panel = h("div", { id: "action-slot" });
      main.append(this.panel);
    } else if (can("operator")) {
      main.append(h("p", { class: "muted", id: "no-actions" }, "Cordon, uncordon and drain need a kubernetes cluster."));
    }
    main.append(this.slot, this.table);
  }

  pickAll() {
    const box = h("input", { type: "checkbox", id: "pick-all", title: "all shown nodes" });
    box.addEventListener("change", () => {
      for (const input of this.body.querySelectorAll("input.pick")) {
        input.checked = box.checked;
        if (box.checked) this.picked.add(input.dataset.node);
        else this.picked.delete(input.dataset.node);
      }
      this.onPick();
    });
    this.pickAllBox = box;
    return box;
  }

  onPick() {
    if (!this.canAct) return;
    const count = this.picked.size;
    for (const button of Object.values(this.buttons)) button.disabled = count === 0;
    this.pickedLine.textContent = count ? `${count} picked: ${[...this.picked].sort().join(", ")}` : "Pick nodes to act on.";
  }

  open(action) {
    if (this.action) this.action.close();
    this.action = new NodeAction(this.panel, {
      cluster: this.name,
      action,
      nodes: [...this.picked].sort(),
      onFinished: (task) => this.remember(task),
    });
  }

  // A finished action: its result stays on each node's row, and the picks are done with.
  remember(task) {
    this.picked.clear();
    for (const result of task.results || []) {
      this.outcomes.set(result.node, { action: task.action, task: task.task_id, ...result });
    }
    this.load();
  }

  async load() {
    let nodes;
    let locks;
    try {
      const query = this.selector ? { selector: this.selector } : {};
      [nodes, locks] = await Promise.all([
        all(`clusters/${encodeURIComponent(this.name)}/nodes`, "nodes", query),
        // Without the locks (an older server) the nodes are still worth showing.
        locksByCluster(this.name).then((found) => found.get(this.name) || [], () => null),
      ]);
    } catch (error) {
      this.slot.replaceChildren(problem(error));
      this.body.replaceChildren();
      this.summary.textContent = "";
      return;
    }
    this.slot.replaceChildren();
    const match = this.match.toLowerCase();
    const shown = match ? nodes.filter((n) => n.name.toLowerCase().includes(match)) : nodes;
    const counts = summarize(shown);
    const known = counts.unknown !== counts.nodes;
    this.summary.textContent =
      `${counts.nodes} node${counts.nodes === 1 ? "" : "s"}` +
      (shown.length !== nodes.length || this.selector ? " shown" : "") +
      (known ? `, ${counts.ready} Ready, ${counts.notReady} NotReady` : "") +
      `, ${cordonedText(counts).replace(/^(\d+)/, "$1 cordoned")}, ${locks ? locks.length : "?"} locked`;
    await this.lookUpCordons(shown);
    const lockOf = new Map((locks || []).map((lock) => [lock.node, lock]));
    const names = new Set(shown.map((n) => n.name));
    for (const name of [...this.picked]) if (!names.has(name)) this.picked.delete(name);
    this.body.replaceChildren(...shown.map((node) => this.row(node, lockOf.get(node.name))));
    if (!shown.length) {
      this.body.append(h("tr", {}, h("td", { colspan: "10", class: "muted" }, nodes.length ? "No node matches the filter." : "No nodes.")));
    }
    if (this.pickAllBox) this.pickAllBox.checked = shown.length > 0 && shown.every((n) => this.picked.has(n.name));
    this.onPick();
  }

  // The user and kind of each task whose cordon is on a node (a few reads, each once).
  async lookUpCordons(nodes) {
    const ids = new Set();
    for (const node of nodes) {
      const cordon = cordonOf(node);
      if (cordon && cordon.task && !this.tasks.has(cordon.task)) ids.add(cordon.task);
    }
    await Promise.all(
      [...ids].slice(0, 50).map(async (id) => {
        try {
          this.tasks.set(id, await request("GET", `tasks/${encodeURIComponent(id)}`));
        } catch {
          this.tasks.set(id, null); // a task since deleted: its id is still shown
        }
      }),
    );
  }

  row(node, lock) {
    const cordon = cordonOf(node);
    let who = h("span", { class: "muted" }, node.schedulable === null || node.schedulable === undefined ? "—" : "no");
    if (cordon && cordon.by === "knm") {
      const task = this.tasks.get(cordon.task);
      who = h("span", { class: "cordon by-knm" }, "by knm: ", link(cordon.task, "tasks", cordon.task), task && task.username ? ` (${task.username})` : "");
    } else if (cordon) {
      who = h("span", { class: "cordon by-hand" }, "by hand");
    }
    const taints = node.info && node.info.taints ? node.info.taints.split(",").filter(Boolean) : [];
    const labels = Object.entries(node.labels || {}).map(([k, v]) => (v ? `${k}=${v}` : k));
    const outcome = this.outcomes.get(node.name);
    const cells = [
      h("td", { class: "name" }, node.name, node.address ? h("div", { class: "muted" }, node.address) : null),
      h("td", { class: "ready" }, yesNo(node.ready, "Ready", "NotReady")),
      h("td", { class: "schedulable" }, yesNo(node.schedulable, "yes", "cordoned")),
      h("td", { class: "cordoned-by" }, who),
      h("td", { class: "lock" }, lock ? [link(lock.holder, "tasks", lock.holder), ` (${lock.kind}${lock.username ? `, ${lock.username}` : ""})`] : ""),
      h("td", { class: "roles" }, (node.roles || []).join(", ")),
      h("td", { class: "labels" }, chips(labels, "label")),
      h("td", { class: "taints" }, chips(taints, "taint")),
      h("td", { class: "outcome" }, outcome ? outcomeText(outcome) : ""),
    ];
    const props = { dataset: { node: node.name } };
    if (cordon) props.class = "is-cordoned";
    if (!this.canAct) return h("tr", props, cells);
    const box = h("input", { type: "checkbox", class: "pick", dataset: { node: node.name }, checked: this.picked.has(node.name), "aria-label": `pick ${node.name}` });
    box.addEventListener("change", () => {
      if (box.checked) this.picked.add(node.name);
      else this.picked.delete(node.name);
      this.onPick();
    });
    return h("tr", props, h("td", {}, box), cells);
  }
}

function outcomeText(outcome) {
  const head = `${outcome.action} ${outcome.status === "success" ? "done" : "failed"}`;
  return h(
    "span",
    { class: `outcome-${outcome.status}` },
    link(head, "tasks", outcome.task),
    outcome.reason ? [": ", h("strong", { class: "reason" }, outcome.reason)] : "",
    outcome.message ? h("div", { class: "message" }, outcome.message) : null,
  );
}
