// A workflow task's own views, beside its node grid (task.js): its steps as a DAG (inline SVG,
// each step colored by its state in the batch shown), a timeline of its rolling batches, and
// its approval gates (Approve / Reject with a comment, for operators). States come from the
// status answer and then from the `step` events of the progress WebSocket; step events ask for
// the status once more shortly after (at most twice a second) for what they do not carry: times,
// nodes and a step's outputs.

import { ApiError, can, request } from "./api.js";
import { clock, h, link, problem, seconds, when } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const SETTLED = new Set(["completed", "failed", "skipped", "cancelled"]);
const RANK = { pending: 0, running: 1 };
const BOX = { width: 150, height: 50, gapX: 30, gapY: 16, pad: 8 };
const TERMINAL_TASK = new Set(["completed", "failed", "cancelled"]);

function svg(tag, attributes = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined) el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function clip(text, length) {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

function rank(status) {
  return RANK[status] ?? 2;
}

// The state a step is drawn in: an approval step that runs is waiting for someone.
function shownState(state) {
  if (!state) return "pending";
  if (state.type === "approval" && state.status === "running") return "waiting";
  return state.status || "pending";
}

export class WorkflowPanel {
  // task: the status answer; hooks.refresh(): ask the task page for the status again.
  constructor(task, hooks) {
    this.task = task;
    this.id = task.task_id;
    this.hooks = hooks;
    this.definition = null;
    this.states = new Map(); // "batch:step" -> the step's state as the status answer shows it
    this.batchChoice = null; // a batch the user picked; null follows the latest one
    this.selectedStep = null;
    this.gates = new Map(); // "batch:step" -> its card, kept while pending (a comment being typed stays)
    this.frame = 0;
    this.refreshTimer = 0;
    this.closed = false;
    this.dagNote = h("p", { class: "muted", id: "dag-note" });
    this.loadProblem = h("div", { class: "slot" });
    this.batchPick = h("select", { id: "dag-batch", "aria-label": "batch shown", onchange: () => this.pickBatch(this.batchPick.value) });
    this.dag = h("div", { id: "dag", class: "dag-wrap" });
    this.gateBox = h("div", { id: "gates" });
    this.decisions = h("div", { id: "decisions" });
    this.stepDetail = h("section", { id: "step-detail", class: "detail" });
    this.timeline = h("div", { id: "timeline", class: "timeline" });
    this.element = h(
      "section",
      { id: "workflow", class: "workflow" },
      this.gateBox,
      h("div", { class: "dag-head" }, h("h2", {}, "Steps"), this.batchPick, this.dagNote),
      this.loadProblem,
      this.dag,
      this.stepDetail,
      h("h2", {}, "Batches"),
      this.timeline,
      this.decisions,
    );
    this.take(task);
    this.load();
  }

  close() {
    this.closed = true;
    cancelAnimationFrame(this.frame);
    clearTimeout(this.refreshTimer);
  }

  // The definition the task runs (its pinned version): steps, dependencies, the strategy.
  async load() {
    const id = this.task.workflow_id;
    try {
      let item = await request("GET", `automation/workflows/${encodeURIComponent(id)}`);
      if (this.task.workflow_version && item.version !== this.task.workflow_version) {
        item = await request("GET", `automation/workflows/${encodeURIComponent(id)}/versions/${encodeURIComponent(this.task.workflow_version)}`);
      }
      this.definition = item.definition || {};
    } catch (error) {
      // Drawn from the status answer alone: steps without their dependencies.
      this.definition = null;
      this.loadProblem.replaceChildren(h("p", { class: "muted" }, "The workflow's definition could not be read: steps are shown without their dependencies."), problem(error));
    }
    this.layout();
    this.schedule();
  }

  // --- the model ------------------------------------------------------------------------------

  take(task) {
    this.task = task;
    for (const state of task.steps || []) {
      const key = `${state.batch}:${state.id}`;
      const known = this.states.get(key);
      // An answer read before an event already shown never takes a step back.
      if (known && rank(state.status) < rank(known.status)) continue;
      this.states.set(key, { ...state });
    }
  }

  update(task) {
    this.take(task);
    this.schedule();
  }

  onStep(event) {
    const data = event.data || {};
    if (!data.step_id) return;
    const batch = Number(data.batch) || 0;
    const key = `${batch}:${data.step_id}`;
    const known = this.states.get(key) || { id: data.step_id, name: data.step_id, batch, nodes: [], outputs: {} };
    this.states.set(key, {
      ...known,
      type: data.step_type || known.type,
      status: data.status,
      result: data.result ?? null,
      error: data.error ?? (SETTLED.has(data.status) ? known.error : null),
      task_id: data.task_id || known.task_id,
    });
    this.schedule();
    // At most one status read per half second, however fast the events come.
    if (!this.refreshTimer) {
      this.refreshTimer = setTimeout(() => {
        this.refreshTimer = 0;
        if (!this.closed) this.hooks.refresh();
      }, 500);
    }
  }

  steps() {
    // The definition's steps in order; steps the status answer names that it does not (no
    // definition) after them.
    const found = [];
    const seen = new Set();
    for (const step of (this.definition && this.definition.steps) || []) {
      if (!step || typeof step.id !== "string" || seen.has(step.id)) continue;
      seen.add(step.id);
      found.push({
        id: step.id,
        name: step.name || step.id,
        type: step.type || "",
        depends_on: Array.isArray(step.depends_on) ? step.depends_on.filter((d) => typeof d === "string") : [],
        when: step.when || "on_success",
        message: typeof step.message === "string" ? step.message : "",
      });
    }
    for (const state of this.states.values()) {
      if (seen.has(state.id)) continue;
      seen.add(state.id);
      found.push({ id: state.id, name: state.name || state.id, type: state.type || "", depends_on: [], when: "on_success", message: "" });
    }
    return found;
  }

  batchCount() {
    let count = 0;
    for (const state of this.states.values()) count = Math.max(count, state.batch + 1);
    if (count) return count;
    const strategy = (this.definition && this.definition.strategy) || {};
    const nodes = (this.task.target_nodes || []).length;
    if (strategy.mode !== "rolling") return 1;
    return Math.max(1, Math.ceil(nodes / Math.max(1, Number(strategy.batch_size) || 1)));
  }

  stateOf(batch, stepId) {
    return this.states.get(`${batch}:${stepId}`);
  }

  // The latest batch that has begun (or the first), unless the user picked one.
  batchShown() {
    const count = this.batchCount();
    if (this.batchChoice !== null && this.batchChoice < count) return this.batchChoice;
    let latest = 0;
    for (const state of this.states.values()) {
      if (state.status !== "pending" && state.batch > latest) latest = state.batch;
    }
    return latest;
  }

  pickBatch(value) {
    this.batchChoice = value === "" ? null : Number(value);
    this.schedule();
  }

  // --- drawing, once per frame ---------------------------------------------------------------

  schedule() {
    if (!this.frame && !this.closed) this.frame = requestAnimationFrame(() => this.draw());
  }

  draw() {
    this.frame = 0;
    if (!this.boxes || this.boxes.size !== this.steps().length) this.layout();
    this.drawBatchPick();
    this.drawDag();
    this.drawGates();
    this.drawStepDetail();
    this.drawTimeline();
    this.drawDecisions();
  }

  // Columns by depth (a step one column right of its deepest dependency), rows in order.
  layout() {
    const steps = this.steps();
    const byId = new Map(steps.map((s) => [s.id, s]));
    const depth = new Map();
    const depthOf = (step, trail = new Set()) => {
      if (depth.has(step.id)) return depth.get(step.id);
      if (trail.has(step.id)) return 0; // a cycle (refused at save): drawn flat
      trail.add(step.id);
      let d = 0;
      for (const dep of step.depends_on) if (byId.has(dep)) d = Math.max(d, depthOf(byId.get(dep), trail) + 1);
      depth.set(step.id, d);
      return d;
    };
    const columns = [];
    for (const step of steps) {
      const d = depthOf(step);
      (columns[d] ||= []).push(step);
    }
    const rows = Math.max(1, ...columns.map((c) => (c ? c.length : 0)));
    const width = BOX.pad * 2 + columns.length * BOX.width + Math.max(0, columns.length - 1) * BOX.gapX;
    const height = BOX.pad * 2 + rows * BOX.height + (rows - 1) * BOX.gapY;
    const at = new Map();
    columns.forEach((column, c) => {
      (column || []).forEach((step, r) => {
        const offset = ((rows - column.length) * (BOX.height + BOX.gapY)) / 2;
        at.set(step.id, { x: BOX.pad + c * (BOX.width + BOX.gapX), y: BOX.pad + offset + r * (BOX.height + BOX.gapY) });
      });
    });
    const marker = svg(
      "marker",
      { id: "dag-arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" },
      svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow" }),
    );
    const edges = svg("g", { class: "edges" });
    for (const step of steps) {
      for (const dep of step.depends_on) {
        const from = at.get(dep);
        const to = at.get(step.id);
        if (!from || !to) continue;
        const x1 = from.x + BOX.width;
        const y1 = from.y + BOX.height / 2;
        const x2 = to.x;
        const y2 = to.y + BOX.height / 2;
        const bend = Math.max(16, (x2 - x1) / 2);
        edges.append(
          svg("path", {
            class: `edge when-${step.when}`,
            d: `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`,
            "marker-end": "url(#dag-arrow)",
            "data-from": dep,
            "data-to": step.id,
          }),
        );
      }
    }
    this.boxes = new Map();
    const nodes = svg("g", { class: "steps" });
    for (const step of steps) {
      const { x, y } = at.get(step.id);
      const title = svg("title", {}, `${step.name} (${step.type})${step.when !== "on_success" ? ` — runs ${step.when.replace("_", " ")}` : ""}`);
      const state = svg("text", { x: x + 10, y: y + 38, class: "step-state" }, "pending");
      const group = svg(
        "g",
        { class: "step st-pending", tabindex: "0", role: "button", "data-step": step.id, "data-state": "pending", "aria-label": `step ${step.id}` },
        title,
        svg("rect", { x, y, width: BOX.width, height: BOX.height, rx: 7, ry: 7 }),
        svg("text", { x: x + 10, y: y + 20, class: "step-name" }, clip(step.name, 16)),
        state,
      );
      group.addEventListener("click", () => this.selectStep(step.id));
      group.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          this.selectStep(step.id);
        }
      });
      nodes.append(group);
      this.boxes.set(step.id, { group, state, step });
    }
    const picture = svg(
      "svg",
      { class: "dag", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "workflow steps and their dependencies" },
      svg("defs", {}, marker),
      edges,
      nodes,
    );
    this.dag.replaceChildren(steps.length ? picture : h("p", { class: "muted" }, "No steps yet."));
  }

  drawBatchPick() {
    const count = this.batchCount();
    if (count <= 1) {
      this.batchPick.hidden = true;
      return;
    }
    this.batchPick.hidden = false;
    const value = this.batchChoice === null ? "" : String(this.batchChoice);
    if (this.batchPick.options.length !== count + 1) {
      this.batchPick.replaceChildren(
        h("option", { value: "" }, "latest batch"),
        ...Array.from({ length: count }, (_, b) => h("option", { value: String(b) }, `batch ${b + 1}`)),
      );
    }
    this.batchPick.value = value;
  }

  drawDag() {
    const batch = this.batchShown();
    const count = this.batchCount();
    const note = count > 1 ? `batch ${batch + 1} of ${count}: ${this.nodesOf(batch).join(", ")}` : "";
    if (this.dagNote.textContent !== note) this.dagNote.textContent = note;
    for (const [id, box] of this.boxes) {
      const state = this.stateOf(batch, id);
      const shown = shownState(state);
      const cls = `step st-${shown}${this.selectedStep === id ? " selected" : ""}`;
      if (box.group.getAttribute("class") !== cls) box.group.setAttribute("class", cls);
      box.group.dataset.state = shown;
      let label = `${box.step.type} · ${shown}`;
      if (state && state.attempts > 1) label += ` · try ${state.attempts}`;
      label = clip(label, 22);
      if (box.state.textContent !== label) box.state.textContent = label;
    }
  }

  // --- approval gates --------------------------------------------------------------------------

  drawGates() {
    const waiting = [...this.states.values()].filter((s) => s.type === "approval" && s.status === "running" && !TERMINAL_TASK.has(this.task.status));
    const keys = new Set(waiting.map((s) => `${s.batch}:${s.id}`));
    for (const [key, gate] of this.gates) {
      if (!keys.has(key)) {
        gate.card.remove();
        this.gates.delete(key);
      }
    }
    for (const state of waiting) {
      const key = `${state.batch}:${state.id}`;
      if (!this.gates.has(key)) {
        const gate = this.gateCard(state);
        this.gates.set(key, gate);
        this.gateBox.append(gate.card);
      }
    }
  }

  gateCard(state) {
    const step = this.steps().find((s) => s.id === state.id) || { name: state.id, message: "" };
    const count = this.batchCount();
    const nodes = state.nodes && state.nodes.length ? state.nodes : this.nodesOf(state.batch);
    const slot = h("div", { class: "slot" });
    const card = h(
      "div",
      { class: "gate card", role: "region", "aria-label": `approval ${state.id}`, dataset: { gate: state.id, batch: String(state.batch) } },
      h("h2", {}, "Waiting for approval: ", h("code", {}, step.name || state.id), count > 1 ? ` (batch ${state.batch + 1} of ${count})` : ""),
      step.message ? h("p", { class: "gate-message" }, step.message) : null,
      nodes.length ? h("p", { class: "muted" }, `nodes: ${nodes.join(", ")}`) : null,
      slot,
    );
    const gate = { card, slot };
    if (!can("operator")) {
      card.append(h("p", { class: "muted gate-viewer" }, "An operator or an admin approves or rejects this step."));
      return gate;
    }
    const comment = h("textarea", { class: "gate-comment", rows: "2", maxlength: "2000", placeholder: "comment (kept with the decision)", "aria-label": "comment" });
    const approve = h("button", { type: "button", class: "gate-approve" }, "Approve");
    const reject = h("button", { type: "button", class: "gate-reject danger" }, "Reject");
    approve.addEventListener("click", () => this.decide(gate, state.id, "approve", comment.value));
    reject.addEventListener("click", () => this.decide(gate, state.id, "reject", comment.value));
    card.append(h("label", { class: "gate-label" }, "Comment", comment), h("div", { class: "actions" }, approve, reject));
    gate.buttons = [approve, reject];
    return gate;
  }

  async decide(gate, stepId, decision, comment) {
    for (const button of gate.buttons) button.disabled = true;
    gate.slot.replaceChildren();
    try {
      const answer = await request("POST", `automation/workflows/${decision}/${encodeURIComponent(this.id)}`, {
        body: { step_id: stepId, comment },
      });
      gate.slot.replaceChildren(h("p", { class: "gate-sent" }, `${answer.decision}; the workflow goes on…`));
    } catch (error) {
      gate.slot.replaceChildren(problem(error instanceof ApiError ? error : String(error)));
      for (const button of gate.buttons) button.disabled = false;
    }
  }

  // Decisions made so far (from the approval steps' outputs): who, what, and their comment.
  drawDecisions() {
    const decided = [...this.states.values()]
      .filter((s) => s.type === "approval" && SETTLED.has(s.status) && s.outputs && s.outputs.decision)
      .sort((a, b) => a.batch - b.batch || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const signature = JSON.stringify(decided.map((s) => [s.batch, s.id, s.outputs]));
    if (signature === this.decisionsDrawn) return;
    this.decisionsDrawn = signature;
    if (!decided.length) {
      this.decisions.replaceChildren();
      return;
    }
    this.decisions.replaceChildren(
      h("h2", {}, "Approvals"),
      h(
        "ul",
        { class: "decisions" },
        decided.map((s) =>
          h(
            "li",
            { dataset: { gate: s.id, batch: String(s.batch), decision: s.outputs.decision } },
            h("code", {}, s.id),
            this.batchCount() > 1 ? ` (batch ${s.batch + 1})` : "",
            `: ${s.outputs.decision}`,
            s.outputs.by ? ` by ${s.outputs.by}` : "",
            s.outputs.comment ? [": ", h("q", { class: "comment" }, s.outputs.comment)] : "",
          ),
        ),
      ),
    );
  }

  // --- one step, and its step task's node grid -------------------------------------------------

  selectStep(id) {
    this.selectedStep = this.selectedStep === id ? null : id;
    this.schedule();
  }

  drawStepDetail() {
    const id = this.selectedStep;
    if (!id) {
      if (this.stepDetail.firstChild) this.stepDetail.replaceChildren();
      this.stepShown = null;
      return;
    }
    const batch = this.batchShown();
    const state = this.stateOf(batch, id) || { id, status: "pending" };
    const step = this.steps().find((s) => s.id === id) || { name: id, type: state.type };
    const signature = JSON.stringify([batch, state]);
    if (signature === this.stepShown) return;
    this.stepShown = signature;
    const outputs = Object.entries(state.outputs || {});
    const grid = h("div", { id: "step-grid", class: "grid" });
    this.stepDetail.replaceChildren(
      h("h2", {}, "Step ", h("code", { id: "step-name" }, id), this.batchCount() > 1 ? ` · batch ${batch + 1}` : ""),
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "name"),
        h("dd", {}, step.name || id),
        h("dt", {}, "type"),
        h("dd", {}, step.type || state.type || ""),
        h("dt", {}, "state"),
        h("dd", { id: "step-state" }, shownState(state)),
        step.depends_on && step.depends_on.length ? [h("dt", {}, "after"), h("dd", {}, step.depends_on.join(", "))] : null,
        state.start_time ? [h("dt", {}, "started"), h("dd", {}, when(state.start_time))] : null,
        state.end_time ? [h("dt", {}, "ended"), h("dd", {}, when(state.end_time))] : null,
        state.duration !== null && state.duration !== undefined && state.end_time ? [h("dt", {}, "took"), h("dd", {}, seconds(state.duration))] : null,
        state.attempts ? [h("dt", {}, "attempts"), h("dd", {}, state.attempts)] : null,
        state.error ? [h("dt", {}, "error"), h("dd", { id: "step-error", class: "message" }, state.error)] : null,
        outputs.map(([key, value]) => [h("dt", {}, key), h("dd", { class: "message" }, typeof value === "string" ? value : JSON.stringify(value))]),
        state.task_id ? [h("dt", {}, "step task"), h("dd", {}, link(state.task_id, "tasks", state.task_id))] : null,
      ),
      ...(state.task_id ? [grid] : []),
    );
    if (state.task_id) this.drawChild(grid, state.task_id);
  }

  // The step task's nodes, colored by state (each links to the step task's page).
  async drawChild(grid, childId) {
    let child;
    try {
      child = await request("GET", `tasks/${encodeURIComponent(childId)}`);
    } catch (error) {
      grid.replaceChildren(problem(error));
      return;
    }
    const results = new Map((child.results || []).map((r) => [r.node, r]));
    const running = !TERMINAL_TASK.has(child.status);
    grid.replaceChildren(
      ...(child.target_nodes || []).map((node) => {
        const r = results.get(node);
        const state = r ? (r.status === "success" ? "success" : "failed") : running ? "running" : "pending";
        return h(
          "a",
          { class: `cell n-${state}`, href: `#/tasks/${encodeURIComponent(childId)}`, title: `${node}: ${state}${r && r.reason ? ` (${r.reason})` : ""}`, dataset: { node, state } },
          node,
        );
      }),
    );
  }

  // --- the timeline of batches -----------------------------------------------------------------

  // The step states of each batch (a roll of 1,000 one-node batches has 1,000 of them: each is
  // looked at once per drawing, not once per batch).
  byBatch() {
    const found = new Map();
    for (const state of this.states.values()) {
      if (!found.has(state.batch)) found.set(state.batch, []);
      found.get(state.batch).push(state);
    }
    return found;
  }

  nodesOf(batch, states = this.byBatch().get(batch) || []) {
    const named = new Set();
    for (const state of states) for (const node of state.nodes || []) named.add(node);
    if (named.size) return [...named];
    const all = this.task.target_nodes || [];
    const strategy = (this.definition && this.definition.strategy) || {};
    if (strategy.mode !== "rolling") return all;
    const size = Math.max(1, Number(strategy.batch_size) || 1);
    return all.slice(batch * size, batch * size + size);
  }

  // batch: its number; states: its steps' states; next: whether it is the first not begun;
  // results: the task's node results by node.
  batchSummary(batch, states, next, results) {
    const nodes = this.nodesOf(batch, states);
    const starts = states.map((s) => Date.parse(s.start_time || "")).filter((t) => !Number.isNaN(t));
    const ends = states.map((s) => Date.parse(s.end_time || "")).filter((t) => !Number.isNaN(t));
    const terminal = TERMINAL_TASK.has(this.task.status);
    let state;
    let reason = "";
    if (states.some((s) => s.type === "approval" && s.status === "running")) {
      state = "waiting";
      reason = "waiting for approval";
    } else if (states.some((s) => s.status === "running")) {
      state = "running";
    } else if (!states.length || states.every((s) => s.status === "pending")) {
      const closed = nodes.map((n) => results.get(n)).find((r) => r && r.reason === "window_closed");
      if (closed) {
        // The roll stopped at its window's end; the node's message says when it resumes.
        state = "window_closed";
        reason = closed.message || "the maintenance window closed";
      } else if (!terminal && next && (this.task.message || "").startsWith("waiting:")) {
        // Waiting for its window to open (wait_for_window).
        state = "paused";
        reason = this.task.message;
      } else {
        state = terminal ? "not_reached" : "pending";
        const other = nodes.map((n) => results.get(n)).find((r) => r && r.status !== "success" && r.message);
        if (other) reason = other.message;
      }
    } else if (states.some((s) => s.status === "cancelled")) {
      state = "cancelled";
    } else if (states.some((s) => s.status === "failed")) {
      state = "failed";
      const failed = states.find((s) => s.status === "failed");
      reason = `step ${failed.id}: ${failed.error || "failed"}`;
    } else if (states.every((s) => s.status === "skipped")) {
      state = "skipped";
      const skipped = nodes.map((n) => results.get(n)).find((r) => r && r.message);
      reason = skipped ? skipped.message : states[0].error || "";
    } else if (states.every((s) => SETTLED.has(s.status))) {
      state = "completed";
    } else {
      state = "running"; // between two of its steps
    }
    const start = starts.length ? Math.min(...starts) : null;
    const end = SETTLED.has(state) ? (ends.length ? Math.max(...ends) : null) : null;
    return { batch, nodes, state, reason, start, end };
  }

  drawTimeline() {
    const count = this.batchCount();
    const grouped = this.byBatch();
    const results = new Map((this.task.results || []).map((r) => [r.node, r]));
    const summaries = [];
    let begun = true; // every batch before this one has begun
    for (let b = 0; b < count; b += 1) {
      const states = grouped.get(b) || [];
      summaries.push(this.batchSummary(b, states, begun, results));
      if (!states.length || states.every((s) => s.status === "pending")) begun = false;
    }
    const shown = this.batchShown();
    const now = Date.now();
    let first = Date.parse(this.task.start_time || "") || Infinity;
    let last = Date.parse(this.task.end_time || "") || -Infinity;
    for (const s of summaries) {
      if (s.start !== null) {
        first = Math.min(first, s.start);
        last = Math.max(last, s.end ?? now);
      }
    }
    const span = Number.isFinite(first) && Number.isFinite(last) && last > first ? last - first : 0;
    if (!this.rows || this.rows.length !== count) {
      this.rows = summaries.map(() => null);
      this.timeline.replaceChildren(h("div", { class: "tl-head" }, h("span", {}, "batch"), h("span", {}, "nodes"), h("span", {}, "state"), h("span", {}, "time"), h("span", {}, "")));
    }
    summaries.forEach((summary, b) => {
      const signature = JSON.stringify([summary, shown === b]);
      let row = this.rows[b];
      if (!row || row.signature !== signature) {
        const bar = h("div", { class: `tl-bar b-${summary.state}` });
        const label = summary.state.replace("_", " ");
        const time =
          summary.start === null
            ? ""
            : `${clock(new Date(summary.start))}${summary.end !== null ? ` – ${clock(new Date(summary.end))} (${seconds(Math.round((summary.end - summary.start) / 1000))})` : " – …"}`;
        const el = h(
          "div",
          { class: `tl-row${shown === b ? " shown" : ""}`, dataset: { batch: String(b), state: summary.state } },
          h("button", { type: "button", class: "linkish", title: "show this batch's steps", onclick: () => this.pickBatch(String(b)) }, `batch ${b + 1}`),
          h("span", { class: "tl-nodes" }, summary.nodes.join(", ")),
          h("span", {}, h("span", { class: `badge b-${summary.state}` }, label)),
          h("span", { class: "tl-time" }, time),
          h("div", { class: "tl-track" }, bar),
          summary.reason ? h("div", { class: "tl-reason" }, summary.reason) : null,
        );
        if (row) row.el.replaceWith(el);
        else this.timeline.append(el);
        row = this.rows[b] = { el, bar, signature };
      }
      // Where the bar sits on the shared time axis (it moves as the roll goes on).
      if (span && summary.start !== null) {
        const left = `${(100 * (summary.start - first)) / span}%`;
        const width = `${Math.max(0.8, (100 * ((summary.end ?? now) - summary.start)) / span)}%`;
        if (row.bar.style.left !== left) row.bar.style.left = left;
        if (row.bar.style.width !== width) row.bar.style.width = width;
        row.bar.hidden = false;
      } else {
        row.bar.hidden = true;
      }
    });
  }
}
