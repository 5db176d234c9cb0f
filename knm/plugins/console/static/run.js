// Run a shell command on a cluster's nodes (POST /automation/ssh/execute). The server's answer
// decides: a refusal by the command guard-rail (422) or any other error is shown in the form.

import { all, request } from "./api.js";
import { h, problem, route } from "./dom.js";

export async function runView(main) {
  const slot = h("div", { class: "slot", id: "run-problem" });
  let clusters;
  try {
    clusters = await all("clusters", "clusters");
  } catch (error) {
    main.append(h("h1", {}, "Run a command"), problem(error));
    return;
  }
  if (!clusters.length) {
    main.append(h("h1", {}, "Run a command"), h("p", { class: "muted" }, "No clusters registered yet: an admin adds them through the API (POST /api/v1/clusters)."));
    return;
  }
  const cluster = h("select", { id: "run-cluster", name: "cluster" }, clusters.map((c) => h("option", { value: c.name }, c.name)));
  const everyNode = h("input", { type: "radio", name: "scope", id: "scope-all", value: "all", checked: true });
  const someNodes = h("input", { type: "radio", name: "scope", id: "scope-some", value: "some" });
  const nodes = h("select", { id: "run-nodes", multiple: true, size: "8", disabled: true });
  const nodeNote = h("span", { class: "muted", id: "node-note" });
  const command = h("textarea", { id: "run-command", rows: "3", required: true, spellcheck: "false", placeholder: "uptime" });
  const credential = h("input", { id: "run-credential", type: "number", min: "1", placeholder: "the cluster's default" });
  const timeout = h("input", { id: "run-timeout", type: "number", min: "1", placeholder: "the ssh setting's" });
  const submit = h("button", { type: "submit", id: "run-submit" }, "Run");
  let names = [];

  async function loadNodes() {
    nodes.replaceChildren();
    names = [];
    nodeNote.textContent = "loading nodes…";
    try {
      names = (await all(`clusters/${encodeURIComponent(cluster.value)}/nodes`, "nodes")).map((n) => n.name);
      nodes.append(...names.map((name) => h("option", { value: name }, name)));
      nodeNote.textContent = `${names.length} nodes`;
    } catch (error) {
      nodeNote.textContent = "";
      slot.replaceChildren(problem(error));
    }
  }
  cluster.addEventListener("change", loadNodes);
  for (const radio of [everyNode, someNodes]) {
    radio.addEventListener("change", () => {
      nodes.disabled = everyNode.checked;
    });
  }

  const form = h(
    "form",
    { class: "card", id: "run-form" },
    h("h1", {}, "Run a command"),
    h("label", { for: "run-cluster" }, "Cluster"),
    cluster,
    h("fieldset", {}, h("legend", {}, "Nodes"), h("label", {}, everyNode, " all nodes "), h("label", {}, someNodes, " these nodes: "), nodeNote, nodes),
    h("label", { for: "run-command" }, "Shell command"),
    command,
    h("div", { class: "row" }, h("label", {}, "Credential id ", credential), h("label", {}, "Timeout per node (s) ", timeout)),
    submit,
    slot,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    slot.replaceChildren();
    const targets = everyNode.checked ? names : [...nodes.selectedOptions].map((o) => o.value);
    if (!targets.length) {
      slot.replaceChildren(problem(everyNode.checked ? "This cluster has no nodes." : "Pick at least one node."));
      return;
    }
    const body = { cluster_name: cluster.value, target_nodes: targets, command: command.value };
    if (credential.value) body.credential_id = Number(credential.value);
    if (timeout.value) body.timeout = Number(timeout.value);
    submit.disabled = true;
    try {
      const started = await request("POST", "automation/ssh/execute", { body });
      window.location.hash = route("tasks", started.task_id);
    } catch (error) {
      slot.replaceChildren(problem(error));
    } finally {
      submit.disabled = false;
    }
  });
  main.append(form);
  await loadNodes();
}
