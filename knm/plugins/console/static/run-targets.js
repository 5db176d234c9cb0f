// The nodes a run targets: all of the cluster's, some by name, or those a label selector
// matches. The selector's preview asks the server (GET /clusters/{name}/nodes?selector=), whose
// parser and matching are the ones an execute request's target_selector goes through, in the
// same order: what the preview lists is what will run, and a selector the server refuses shows
// the server's own words.

import { all } from "./api.js";
import { h, problem } from "./dom.js";

const DEBOUNCE_MS = 300;
const SHOWN = 200;

export function targetPicker(initial = {}) {
  const everyNode = h("input", { type: "radio", name: "scope", id: "scope-all", value: "all", checked: true });
  const someNodes = h("input", { type: "radio", name: "scope", id: "scope-some", value: "some" });
  const bySelector = h("input", { type: "radio", name: "scope", id: "scope-selector", value: "selector" });
  const nodes = h("select", { id: "run-nodes", multiple: true, size: "8", disabled: true });
  const nodeNote = h("span", { class: "muted", id: "node-note" });
  const selector = h("input", {
    id: "run-selector",
    type: "text",
    spellcheck: "false",
    autocomplete: "off",
    disabled: true,
    placeholder: "zone=z1, node-role.kubernetes.io/worker, tier in (web,db)",
  });
  const selectorNote = h("span", { class: "muted", id: "selector-note" });
  const preview = h("ul", { id: "selector-preview", class: "preview" });
  const selectorProblem = h("div", { class: "slot field-problem", id: "selector-problem" });
  const nodesProblem = h("div", { class: "slot field-problem", id: "nodes-problem" });
  let cluster = "";
  let names = [];
  let timer = 0;
  let asked = 0;

  function scope() {
    return everyNode.checked ? "all" : someNodes.checked ? "some" : "selector";
  }

  function sync() {
    nodes.disabled = scope() !== "some";
    selector.disabled = scope() !== "selector";
    preview.hidden = scope() !== "selector";
    selectorNote.hidden = scope() !== "selector";
    if (scope() === "selector") schedule(0);
  }
  for (const radio of [everyNode, someNodes, bySelector]) radio.addEventListener("change", sync);
  selector.addEventListener("input", () => schedule(DEBOUNCE_MS));

  function schedule(wait) {
    clearTimeout(timer);
    asked += 1; // an answer to an older question is dropped
    selectorNote.textContent = selector.value.trim() ? "checking…" : "";
    preview.dataset.state = "typing";
    timer = setTimeout(previewNow, wait);
  }

  async function previewNow() {
    const mine = ++asked;
    const text = selector.value.trim();
    selectorProblem.replaceChildren();
    if (!text) {
      preview.replaceChildren();
      selectorNote.textContent = "Type a label selector to see the nodes it matches.";
      preview.dataset.state = "empty";
      preview.dataset.selector = "";
      return;
    }
    preview.dataset.state = "loading";
    try {
      const found = await all(`clusters/${encodeURIComponent(cluster)}/nodes`, "nodes", { selector: text });
      if (mine !== asked) return;
      const items = found.slice(0, SHOWN).map((node) => h("li", { dataset: { node: node.name } }, node.name, labelsOf(node, text)));
      if (found.length > SHOWN) items.push(h("li", { class: "muted" }, `and ${found.length - SHOWN} more`));
      preview.replaceChildren(...items);
      selectorNote.textContent = found.length
        ? `${found.length} node${found.length === 1 ? " matches" : "s match"} ${text}`
        : `No node of ${cluster} matches ${text}: a run with it would be refused.`;
      preview.dataset.state = "ready";
      preview.dataset.selector = text;
      preview.dataset.cluster = cluster;
    } catch (error) {
      if (mine !== asked) return;
      preview.replaceChildren();
      selectorNote.textContent = "";
      selectorProblem.replaceChildren(problem(error));
      preview.dataset.state = "error";
      preview.dataset.selector = text;
      preview.dataset.cluster = cluster;
    }
  }

  // The node's labels the selector names: why it matched.
  function labelsOf(node, text) {
    const labels = Object.entries(node.labels || {}).filter(([key]) => text.includes(key));
    if (!labels.length) return null;
    return h("span", { class: "muted small" }, " ", labels.map(([k, v]) => (v ? `${k}=${v}` : k)).join(", "));
  }

  async function load(name) {
    cluster = name;
    // The preview shown is the last cluster's until this one's answers.
    asked += 1;
    preview.dataset.state = "typing";
    nodes.replaceChildren();
    names = [];
    nodeNote.textContent = "loading nodes…";
    nodesProblem.replaceChildren();
    try {
      names = (await all(`clusters/${encodeURIComponent(name)}/nodes`, "nodes")).map((n) => n.name);
      if (name !== cluster) return;
      nodes.append(...names.map((n) => h("option", { value: n }, n)));
      nodes.size = Math.min(8, Math.max(3, names.length));
      nodeNote.textContent = `${names.length} nodes`;
    } catch (error) {
      nodeNote.textContent = "";
      nodesProblem.replaceChildren(problem(error));
    }
    if (scope() === "selector") schedule(0);
  }

  if (initial.selector) {
    bySelector.checked = true;
    selector.value = initial.selector;
  }
  sync();

  const el = h(
    "fieldset",
    { id: "run-targets" },
    h("legend", {}, "Nodes"),
    h("label", {}, everyNode, " all nodes "),
    h("label", {}, someNodes, " these nodes: "),
    nodeNote,
    nodes,
    nodesProblem,
    h("label", {}, bySelector, " nodes whose labels match: "),
    selector,
    selectorNote,
    preview,
    selectorProblem,
  );

  return {
    el,
    load,
    // The request's target fields, or {problem} when there is nothing to run on.
    read() {
      nodesProblem.replaceChildren();
      selectorProblem.replaceChildren();
      if (scope() === "all") {
        if (!names.length) return { problem: "This cluster has no nodes." };
        return { target_nodes: names };
      }
      if (scope() === "some") {
        const picked = [...nodes.selectedOptions].map((o) => o.value);
        if (!picked.length) {
          nodesProblem.replaceChildren(problem("Pick at least one node."));
          return { problem: "Pick at least one node." };
        }
        return { target_nodes: picked };
      }
      const text = selector.value.trim();
      if (!text) {
        selectorProblem.replaceChildren(problem("Type a label selector."));
        return { problem: "Type a label selector." };
      }
      return { target_selector: text };
    },
    slots: { target_selector: selectorProblem, target_nodes: nodesProblem },
  };
}
