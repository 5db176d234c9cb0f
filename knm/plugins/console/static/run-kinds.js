// What a run does, one entry per executor: its fields in the form, and the part of the execute
// request they make. Each kind's `build(ctx)` answers {el, read, place, clearSecrets}: `read()`
// gives {body} or {problem} (already shown at its field), `place(error)` shows a server refusal
// at the field it names (true when it did).

import { all, request } from "./api.js";
import { h, problem } from "./dom.js";
import { parameterForm } from "./run-params.js";
import { parseVars } from "./run-vars.js";

function fieldProblem(id) {
  return h("div", { class: "slot field-problem", id });
}

function says(error, ...fields) {
  const text = `${error.detail || ""}`;
  const named = (error.details || []).map((d) => d.field || "");
  return fields.some((f) => text.startsWith(f) || named.some((n) => n.startsWith(f)));
}

// A library list as a <select> (followPicked reads the chosen item in full).
async function libraryPicker({ id, path, plural, chosen, empty }) {
  const items = await all(path, plural);
  const select = h(
    "select",
    { id },
    items.map((item) => h("option", { value: String(item.id) }, `${item.name}${item.is_builtin ? " (builtin)" : ""}`)),
  );
  if (chosen && items.some((item) => String(item.id) === String(chosen))) select.value = String(chosen);
  return { select, items, empty: items.length ? null : h("p", { class: "muted" }, empty) };
}

// Reads the picker's chosen item in full (GET …/{id}) now and whenever the choice changes, and
// hands it to `shown`; an answer for an item no longer chosen is dropped, a failure shows in
// `slot`. `reset` runs before each read.
async function followPicked({ select, path, noun, holder, slot, shown, reset = () => {} }) {
  async function show() {
    holder.replaceChildren(h("p", { class: "muted" }, `loading the ${noun}…`));
    reset();
    slot.replaceChildren();
    try {
      const item = await request("GET", `${path}/${encodeURIComponent(select.value)}`);
      if (String(item.id) !== select.value) return;
      shown(item);
    } catch (error) {
      holder.replaceChildren();
      slot.replaceChildren(problem(error));
    }
  }
  select.addEventListener("change", show);
  await show();
}

// --- command ------------------------------------------------------------------------------------

const command = {
  key: "command",
  label: "Command",
  route: "automation/ssh/execute",
  feature: "ssh_enabled",
  credential: true,
  async build() {
    const text = h("textarea", { id: "run-command", rows: "3", spellcheck: "false", placeholder: "uptime" });
    const slot = fieldProblem("command-problem");
    return {
      el: h("div", {}, h("label", { for: "run-command" }, "Shell command"), text, slot),
      read() {
        slot.replaceChildren();
        if (!text.value.trim()) {
          slot.replaceChildren(problem("Type a command."));
          return { problem: "Type a command." };
        }
        return { body: { command: text.value } };
      },
      place(error) {
        if (says(error, "command") || /dangerous command|command validation/.test(`${error.message} ${error.detail}`)) {
          slot.replaceChildren(problem(error));
          return true;
        }
        return false;
      },
    };
  },
};

// --- script -------------------------------------------------------------------------------------

const script = {
  key: "script",
  label: "Script",
  route: "automation/scripts/execute",
  feature: "scripts_enabled",
  credential: true,
  async build(ctx) {
    const { select, empty } = await libraryPicker({
      id: "run-script",
      path: "automation/scripts",
      plural: "scripts",
      chosen: ctx.params.get("script_id"),
      empty: "No scripts in the library.",
    });
    if (empty) return { el: empty, read: () => ({ problem: "No script to run." }), place: () => false };
    const about = h("div", { id: "script-about", class: "muted" });
    const holder = h("div", {});
    const sudo = h("input", { type: "checkbox", id: "run-sudo" });
    const slot = fieldProblem("script-problem");
    let form = parameterForm([]);
    await followPicked({
      select,
      path: "automation/scripts",
      noun: "script",
      holder,
      slot,
      shown: (item) => {
        about.replaceChildren(`${item.language || "shell"}, version ${item.version}. `, item.description || "");
        form = parameterForm(item.parameters || []);
        holder.replaceChildren(h("h3", {}, "Parameters"), form.el);
      },
    });
    return {
      el: h("div", {}, h("label", { for: "run-script" }, "Script"), select, about, holder, h("label", {}, sudo, " run as root (sudo)"), slot),
      read() {
        const { values, problems } = form.read();
        if (problems.length) return { problem: "Some parameters need a value." };
        const body = { script_id: Number(select.value), parameters: values };
        if (sudo.checked) body.sudo = true;
        return { body };
      },
      place(error) {
        if (form.place(error)) return true;
        if (says(error, "script", "parameters")) {
          slot.replaceChildren(problem(error));
          return true;
        }
        return false;
      },
      clearSecrets: () => form.clearSecrets(),
    };
  },
};

// --- playbook -----------------------------------------------------------------------------------

const playbook = {
  key: "playbook",
  label: "Playbook",
  route: "automation/ansible/run",
  feature: "ansible_enabled",
  credential: true,
  async build(ctx) {
    const { select, items, empty } = await libraryPicker({
      id: "run-playbook",
      path: "automation/ansible/playbooks",
      plural: "playbooks",
      chosen: ctx.params.get("playbook_id"),
      empty: "No playbooks in the library.",
    });
    if (empty) return { el: empty, read: () => ({ problem: "No playbook to run." }), place: () => false };
    const about = h("div", { id: "playbook-about", class: "muted" });
    const describe = () => {
      const item = items.find((p) => String(p.id) === select.value);
      about.replaceChildren(item ? `${item.category || ""} ${item.description || ""}`.trim() : "");
    };
    select.addEventListener("change", describe);
    describe();
    const vars = h("textarea", {
      id: "run-extra-vars",
      rows: "6",
      spellcheck: "false",
      placeholder: "ntp_server: pool.ntp.org\nretries: 3\n\n(YAML or JSON)",
    });
    const varsSlot = fieldProblem("extra-vars-problem");
    const args = h("input", { id: "run-extra-args", type: "text", spellcheck: "false", placeholder: "--check --diff" });
    const argsSlot = fieldProblem("extra-args-problem");
    const checkVars = () => {
      varsSlot.replaceChildren();
      vars.removeAttribute("aria-invalid");
      try {
        return { value: parseVars(vars.value) };
      } catch (error) {
        vars.setAttribute("aria-invalid", "true");
        varsSlot.replaceChildren(h("div", { class: "problem", role: "alert" }, h("strong", {}, "extra vars "), error.message));
        return { error };
      }
    };
    let timer = 0;
    vars.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(checkVars, 400);
    });
    return {
      el: h(
        "div",
        {},
        h("label", { for: "run-playbook" }, "Playbook"),
        select,
        about,
        h("label", { for: "run-extra-vars" }, "Extra vars ", h("span", { class: "muted small" }, "(YAML or JSON, a mapping)")),
        vars,
        varsSlot,
        h("label", { for: "run-extra-args" }, "Extra arguments ", h("span", { class: "muted small" }, "(the allowed ansible-playbook options)")),
        args,
        argsSlot,
      ),
      read() {
        clearTimeout(timer);
        const parsed = checkVars();
        if (parsed.error) return { problem: "The extra vars cannot be read." };
        const body = { playbook_id: Number(select.value), extra_vars: parsed.value };
        if (args.value.trim()) body.extra_args = args.value.trim();
        return { body };
      },
      place(error) {
        if (says(error, "extra_vars")) {
          varsSlot.replaceChildren(problem(error));
          return true;
        }
        if (says(error, "extra_args")) {
          argsSlot.replaceChildren(problem(error));
          return true;
        }
        return false;
      },
    };
  },
};

// --- workflow -----------------------------------------------------------------------------------

const STRATEGY = [
  ["mode", "mode", (v) => (v === "rolling" ? "rolling: one batch of nodes after another" : "all nodes at once")],
  ["batch_size", "batch size", (v) => `${v} node(s) per batch`],
  ["max_failed_batches", "failed batches tolerated", (v) => String(v)],
  ["pause_between", "pause between batches", (v) => `${v} s`],
  ["on_hand_cordoned", "a node cordoned by hand", (v) => (v === "fail" ? "fails its batch" : "is skipped")],
];

const workflow = {
  key: "workflow",
  label: "Workflow",
  route: "automation/workflows/execute",
  feature: "workflows_enabled",
  credential: true,
  async build(ctx) {
    const { select, empty } = await libraryPicker({
      id: "run-workflow",
      path: "automation/workflows",
      plural: "workflows",
      chosen: ctx.params.get("workflow_id"),
      empty: "No workflows in the library.",
    });
    if (empty) return { el: empty, read: () => ({ problem: "No workflow to run." }), place: () => false };
    const about = h("div", { id: "workflow-about", class: "muted" });
    const holder = h("div", {});
    const strategy = h("dl", { class: "facts", id: "workflow-strategy" });
    const keep = h("input", { type: "checkbox", id: "run-keep-cordoned" });
    const wait = h("input", { type: "checkbox", id: "run-wait-window" });
    const slot = fieldProblem("workflow-problem");
    let form = parameterForm([]);
    let definition = null;
    // The roll as the workflow declares it, and the chosen cluster's budget beside it.
    function drawStrategy() {
      strategy.replaceChildren();
      if (!definition) return;
      const chosen = { mode: "all", batch_size: 1, max_failed_batches: 0, pause_between: 0, on_hand_cordoned: "skip", ...(definition.strategy || {}) };
      const rows = [];
      for (const [key, label, shown] of STRATEGY) {
        if (key !== "mode" && chosen.mode !== "rolling" && key !== "on_hand_cordoned") continue;
        rows.push(h("dt", {}, label), h("dd", { dataset: { key } }, shown(chosen[key])));
      }
      const cluster = ctx.cluster();
      if (cluster && cluster.max_unavailable !== undefined && cluster.max_unavailable !== null) {
        rows.push(h("dt", {}, "cluster's max unavailable"), h("dd", { dataset: { key: "max_unavailable" } }, `${cluster.max_unavailable} node(s) out at once (${cluster.name})`));
      }
      if (definition.maintenance_window) rows.push(h("dt", {}, "maintenance window"), h("dd", { dataset: { key: "maintenance_window" } }, definition.maintenance_window));
      if (definition.disruptive) rows.push(h("dt", {}, "disruptive"), h("dd", { dataset: { key: "disruptive" } }, "takes knm's node locks"));
      strategy.append(...rows);
    }
    await followPicked({
      select,
      path: "automation/workflows",
      noun: "workflow",
      holder,
      slot,
      reset: () => {
        definition = null;
        strategy.replaceChildren();
      },
      shown: (item) => {
        definition = item.definition || {};
        const steps = definition.steps || [];
        about.replaceChildren(`${steps.length} step(s): ${steps.map((s) => s.id).join(" → ")}. `, item.description || "");
        drawStrategy();
        form = parameterForm(definition.parameters || []);
        holder.replaceChildren(h("h3", {}, "Parameters"), form.el);
      },
    });
    return {
      el: h(
        "div",
        {},
        h("label", { for: "run-workflow" }, "Workflow"),
        select,
        about,
        holder,
        h("h3", {}, "Rolling strategy ", h("span", { class: "muted small" }, "(the workflow's own; change it in the library)")),
        strategy,
        h("label", {}, keep, " leave the nodes of a failed batch cordoned"),
        h("label", {}, wait, " outside the maintenance window, wait for it to open"),
        slot,
      ),
      read() {
        const { values, problems } = form.read();
        if (problems.length) return { problem: "Some parameters need a value." };
        const body = { workflow_id: Number(select.value), parameters: values };
        if (keep.checked) body.keep_failed_cordoned = true;
        if (wait.checked) body.wait_for_window = true;
        return { body };
      },
      place(error) {
        if (form.place(error)) return true;
        if (says(error, "workflow", "parameters") || /^step /.test(`${error.detail || ""}`)) {
          slot.replaceChildren(problem(error));
          return true;
        }
        return false;
      },
      clearSecrets: () => form.clearSecrets(),
      onCluster: drawStrategy,
    };
  },
};

// --- k8s action ---------------------------------------------------------------------------------

const EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
// The params each action takes (knm/plugins/k8s/schemas.py), as fields.
const ACTIONS = {
  cordon: [["wait_for_lock", "bool", "wait for another task's lock or a free max_unavailable slot"]],
  uncordon: [["force", "bool", "also uncordon a node cordoned by hand (not by knm)"]],
  drain: [
    // A drain starts as a dry run: what would be evicted, and which budgets block.
    ["dry_run", "bool", "only list what would be evicted and which budgets block, changing nothing", false, true],
    ["force", "bool", "evict pods no controller manages (they are gone for good)"],
    ["delete_emptydir_data", "bool", "evict pods with emptyDir volumes (their data is lost)"],
    ["grace_period", "int", "seconds each evicted pod gets to stop (the pod's own when empty)"],
    ["drain_timeout", "int", "seconds for the evictions (default: the node's timeout less a reserve)"],
    ["on_timeout", ["fail", "uncordon", "delete"], "when pods are still left at the timeout"],
    ["wait_for_lock", "bool", "wait for another task's lock or a free max_unavailable slot"],
  ],
  label: [["labels", "map", "one key=value per line", true]],
  unlabel: [["keys", "list", "one label key per line", true]],
  taint: [
    ["key", "text", "the taint's key", true],
    ["value", "text", "the taint's value (may be empty)"],
    ["effect", EFFECTS, "the taint's effect"],
  ],
  untaint: [
    ["key", "text", "the taint's key", true],
    ["effect", ["", ...EFFECTS], "only the taint with this effect (every effect when empty)"],
  ],
  wait_ready: [
    ["after_reboot", "bool", "also wait until the node booted again (a new boot id)"],
    ["boot_id", "text", "the boot id before the reboot (default: the one record_boot_id stored)"],
  ],
  record_boot_id: [],
};

function k8sField([name, type, help, required, checked]) {
  const id = `k8s-${name}`;
  let input;
  if (type === "bool") input = h("input", { type: "checkbox", id, checked: Boolean(checked) });
  else if (type === "int") input = h("input", { type: "number", id, min: "0", step: "1" });
  else if (Array.isArray(type)) input = h("select", { id }, type.map((v) => h("option", { value: v }, v || "(any)")));
  else if (type === "map" || type === "list") input = h("textarea", { id, rows: "3", spellcheck: "false", placeholder: type === "map" ? "pool=blue\nteam=ops" : "pool\nteam" });
  else input = h("input", { type: "text", id, spellcheck: "false" });
  const label = type === "bool"
    ? h("label", { for: id }, input, " ", h("code", {}, name), " ", h("span", { class: "muted small" }, help))
    : h("label", { for: id }, h("code", {}, name), required ? h("span", { class: "req" }, " *") : null, " ", h("span", { class: "muted small" }, help));
  return { name, type, required, input, el: type === "bool" ? h("div", { class: "param" }, label) : h("div", { class: "param" }, label, input) };
}

function readK8s(fields) {
  const params = {};
  const problems = [];
  for (const { name, type, required, input } of fields) {
    const raw = input.value;
    if (type === "bool") {
      if (input.checked) params[name] = true;
    } else if (type === "int") {
      if (input.validity.badInput || (raw !== "" && !/^\d+$/.test(raw))) problems.push(`${name} must be a whole number`);
      else if (raw !== "") params[name] = Number(raw);
    } else if (type === "map") {
      const labels = {};
      raw.split("\n").forEach((line, index) => {
        if (!line.trim()) return;
        const at = line.indexOf("=");
        if (at < 1) problems.push(`${name} line ${index + 1}: write key=value`);
        else labels[line.slice(0, at).trim()] = line.slice(at + 1).trim();
      });
      if (Object.keys(labels).length) params[name] = labels;
    } else if (type === "list") {
      const keys = raw.split(/[\n,]/).map((k) => k.trim()).filter(Boolean);
      if (keys.length) params[name] = keys;
    } else if (raw !== "") {
      params[name] = raw;
    }
    if (required && params[name] === undefined && !problems.some((p) => p.startsWith(name))) problems.push(`${name} is required`);
  }
  return { params, problems };
}

const k8s = {
  key: "k8s",
  label: "Kubernetes action",
  route: "automation/k8s/execute",
  feature: "k8s_enabled",
  credential: false,
  async build(ctx) {
    const action = h("select", { id: "run-action" }, Object.keys(ACTIONS).map((a) => h("option", { value: a }, a)));
    if (ACTIONS[ctx.params.get("action")]) action.value = ctx.params.get("action");
    const holder = h("div", { id: "k8s-params", class: "params" });
    const slot = fieldProblem("k8s-params-problem");
    let fields = [];
    function show() {
      fields = ACTIONS[action.value].map(k8sField);
      holder.replaceChildren(...(fields.length ? fields.map((f) => f.el) : [h("p", { class: "muted" }, "This action takes no parameters.")]));
      slot.replaceChildren();
    }
    action.addEventListener("change", show);
    show();
    const note = h("p", { class: "muted", id: "k8s-note" });
    function checkCluster() {
      const cluster = ctx.cluster();
      note.hidden = !cluster || cluster.kind === "kubernetes";
      note.textContent = note.hidden ? "" : `${cluster.name} is a ${cluster.kind} cluster: Kubernetes actions need a kubernetes one.`;
    }
    checkCluster();
    return {
      onCluster: checkCluster,
      el: h("div", {}, note, h("label", { for: "run-action" }, "Action"), action, h("h3", {}, "Parameters"), holder, slot),
      read() {
        slot.replaceChildren();
        const { params, problems } = readK8s(fields);
        if (problems.length) {
          slot.replaceChildren(problem(problems.join("; ")));
          return { problem: problems.join("; ") };
        }
        return { body: { action: action.value, params } };
      },
      place(error) {
        if (says(error, "params", "action")) {
          slot.replaceChildren(problem(error));
          return true;
        }
        return false;
      },
    };
  },
};

export const KINDS = [command, script, playbook, workflow, k8s];
