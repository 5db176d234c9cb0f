// Run something on a cluster's nodes: a command, a script, a playbook, a workflow or a
// Kubernetes action (run-kinds.js), on all nodes, some by name or those a label selector
// matches (run-targets.js). The server's answer decides: a refusal by the command guard-rail
// (422) or any other error is shown in the form, at the field it names where it names one; a
// started task opens its page.

import { all, request } from "./api.js";
import { h, problem, route } from "./dom.js";
import { KINDS } from "./run-kinds.js";
import { targetPicker } from "./run-targets.js";

// Where a refusal naming a request field is shown, besides the form's foot.
function fieldOf(error) {
  const named = (error.details || []).find((d) => d.field);
  if (named) return named.field;
  const match = /^([a-z_]+)\b/.exec(`${error.detail || ""}`);
  return match ? match[1] : "";
}

export async function runView(main, params = new URLSearchParams()) {
  const slot = h("div", { class: "slot", id: "run-problem" });
  let clusters;
  try {
    clusters = await all("clusters", "clusters");
  } catch (error) {
    main.append(h("h1", {}, "Run"), problem(error));
    return;
  }
  if (!clusters.length) {
    main.append(h("h1", {}, "Run"), h("p", { class: "muted" }, "No clusters registered yet: an admin adds them through the API (POST /api/v1/clusters)."));
    return;
  }
  // Which executors are switched on (GET /features, public): the others are shown but off.
  let features = {};
  try {
    features = (await request("GET", "features", { anonymous: true })).automation || {};
  } catch {
    features = {};
  }

  const cluster = h("select", { id: "run-cluster", name: "cluster" }, clusters.map((c) => h("option", { value: c.name }, c.name)));
  if (clusters.some((c) => c.name === params.get("cluster"))) cluster.value = params.get("cluster");
  const clusterOf = () => clusters.find((c) => c.name === cluster.value);
  const targets = targetPicker({ selector: params.get("selector") || "" });

  const isOff = (kind) => features.enabled === false || features[kind.feature] === false;
  const asked = KINDS.find((k) => k.key === params.get("kind") && !isOff(k));
  const initialKind = (asked || KINDS.find((k) => !isOff(k)) || KINDS[0]).key;
  const kindRadios = KINDS.map((kind) => {
    const off = isOff(kind);
    const radio = h("input", { type: "radio", name: "kind", id: `kind-${kind.key}`, value: kind.key, checked: kind.key === initialKind, disabled: off });
    return h("label", { class: off ? "kind off" : "kind", title: off ? `${kind.feature} is off` : null }, radio, ` ${kind.label}`, off ? " (off)" : "");
  });
  const what = h("div", { id: "run-what", class: "run-what" });
  const credentialSlot = h("div", { class: "slot field-problem", id: "credential-problem" });
  const credential = await credentialPicker(clusterOf);
  const credentialRow = h("div", { id: "run-credential-row" }, h("label", { for: "run-credential" }, "Credential "), credential.el, credentialSlot);
  const timeout = h("input", { id: "run-timeout", type: "number", min: "1", placeholder: "the executor's setting" });
  const deadline = h("input", { id: "run-deadline", type: "number", min: "1", placeholder: "none" });
  const batchSize = h("input", { id: "run-batch-size", type: "number", min: "1", placeholder: "as many as allowed" });
  const maxFailures = h("input", { id: "run-max-failures", type: "number", min: "0", placeholder: "no limit" });
  const optionsSlot = h("div", { class: "slot field-problem", id: "options-problem" });
  const fanOut = h("div", { class: "row", id: "run-fan-out" }, h("label", {}, "Nodes in flight ", batchSize), h("label", {}, "Stop after this many failed nodes ", maxFailures));
  const submit = h("button", { type: "submit", id: "run-submit" }, "Run");

  let kind = KINDS.find((k) => k.key === initialKind);
  let panel = null;
  let building = 0;

  async function showKind() {
    const mine = ++building;
    slot.replaceChildren();
    what.replaceChildren(h("p", { class: "muted" }, "loading…"));
    what.dataset.kind = kind.key;
    credentialRow.hidden = !kind.credential;
    // A workflow rolls its own batches; batch_size and max_failures are for one-shot kinds.
    fanOut.hidden = kind.key === "workflow" || kind.key === "playbook";
    try {
      const built = await kind.build({ params, cluster: clusterOf });
      if (mine !== building) return;
      panel = built;
      what.replaceChildren(built.el);
      what.dataset.ready = kind.key;
    } catch (error) {
      if (mine !== building) return;
      panel = null;
      what.replaceChildren(problem(error));
    }
  }
  for (const label of kindRadios) {
    const radio = label.querySelector("input");
    radio.addEventListener("change", () => {
      if (!radio.checked) return;
      kind = KINDS.find((k) => k.key === radio.value);
      showKind();
    });
  }
  cluster.addEventListener("change", () => {
    targets.load(cluster.value);
    credential.refresh();
    // The workflow's strategy shows the cluster's budget; a k8s action says if it cannot apply.
    if (panel && panel.onCluster) panel.onCluster();
  });

  function numberOf(input, name, problems) {
    // A whole number; its bounds are the server's to say (422, shown at the limits).
    if (input.validity.badInput || (input.value !== "" && !/^-?\d+$/.test(input.value.trim()))) {
      problems.push(`${name} must be a whole number`);
      return undefined;
    }
    return input.value === "" ? undefined : Number(input.value);
  }

  const form = h(
    "form",
    { class: "card run-card", id: "run-form", novalidate: true },
    h("h1", {}, "Run"),
    h("label", { for: "run-cluster" }, "Cluster"),
    cluster,
    targets.el,
    h("fieldset", { id: "run-kind" }, h("legend", {}, "What to run"), h("div", { class: "kinds" }, kindRadios), what),
    credentialRow,
    h(
      "details",
      { id: "run-options" },
      h("summary", {}, "Limits"),
      h("div", { class: "row" }, h("label", {}, "Timeout per node (s) ", timeout), h("label", {}, "Deadline for the whole task (s) ", deadline)),
      fanOut,
      optionsSlot,
    ),
    submit,
    slot,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    slot.replaceChildren();
    optionsSlot.replaceChildren();
    credentialSlot.replaceChildren();
    if (!panel) {
      slot.replaceChildren(problem("Nothing to run: the form did not load."));
      return;
    }
    const chosen = targets.read();
    const made = panel.read();
    const problems = [];
    const body = { cluster_name: cluster.value };
    const limits = { timeout: numberOf(timeout, "timeout", problems), deadline: numberOf(deadline, "deadline", problems) };
    if (!fanOut.hidden) {
      limits.batch_size = numberOf(batchSize, "batch_size", problems);
      limits.max_failures = numberOf(maxFailures, "max_failures", problems);
    }
    if (problems.length) optionsSlot.replaceChildren(problem(problems.join("; ")));
    if (chosen.problem || made.problem || problems.length) {
      slot.replaceChildren(problem([chosen.problem, made.problem, ...problems].filter(Boolean).join(" ")));
      return;
    }
    Object.assign(body, chosen.target_nodes ? { target_nodes: chosen.target_nodes } : { target_selector: chosen.target_selector }, made.body);
    for (const [key, value] of Object.entries(limits)) if (value !== undefined) body[key] = value;
    if (kind.credential && credential.value()) body.credential_id = credential.value();
    submit.disabled = true;
    try {
      const started = await request("POST", kind.route, { body });
      if (panel.clearSecrets) panel.clearSecrets();
      window.location.hash = route("tasks", started.task_id);
    } catch (error) {
      const field = fieldOf(error);
      const where = targets.slots[field] || (field === "credential_id" ? credentialSlot : null) ||
        (["timeout", "deadline", "batch_size", "max_failures"].includes(field) ? optionsSlot : null);
      if (where) where.replaceChildren(problem(error));
      else panel.place(error);
      slot.replaceChildren(problem(error));
    } finally {
      submit.disabled = false;
    }
  });
  main.append(form);
  await Promise.all([targets.load(cluster.value), showKind()]);
}

// The credential a run logs in with: the cluster's default, or one of GET /credentials (nothing
// secret is ever listed). Where the list cannot be read, an id can still be typed.
async function credentialPicker(clusterOf) {
  let listed = null;
  try {
    listed = await all("credentials", "credentials");
  } catch {
    listed = null;
  }
  if (!listed) {
    const input = h("input", { id: "run-credential", type: "number", min: "1", placeholder: "the cluster's default" });
    return { el: input, value: () => (input.value ? Number(input.value) : undefined), refresh() {} };
  }
  const select = h("select", { id: "run-credential" });
  function refresh() {
    const chosen = select.value;
    const c = clusterOf();
    const fallback = c && c.default_credential_id ? listed.find((x) => x.id === c.default_credential_id) : null;
    select.replaceChildren(
      h("option", { value: "" }, c && c.default_credential_id ? `the cluster's default (${fallback ? fallback.name : `#${c.default_credential_id}`})` : "the cluster's default (none set)"),
      ...listed.map((x) => h("option", { value: String(x.id) }, `${x.name} (${x.username || x.auth_type || ""})`)),
    );
    if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
  }
  refresh();
  return { el: select, value: () => (select.value ? Number(select.value) : undefined), refresh };
}
