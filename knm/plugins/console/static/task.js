// One task, live: a grid of its nodes colored by state, updated from the progress WebSocket.
// Events only change an in-memory model and mark nodes dirty; the page is redrawn at most once
// per animation frame, touching only the cells that changed, so thousands of events a second
// over a thousand nodes cost one small DOM update per frame.

import { AnsiWriter } from "./ansi.js";
import { ApiError, bytes, can, request, routeOf } from "./api.js";
import { h, link, problem, route, seconds, when } from "./dom.js";
import { Live } from "./live.js";
import { OutputSearch } from "./search.js";
import { statusBadge, what } from "./tasks.js";
import { WorkflowPanel } from "./workflow.js";

const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const STATES = ["pending", "running", "success", "failed"];
// A grid this small shows node names in its cells; a larger one, squares with tooltips.
const NAMED_CELLS = 60;
const CELLS_PER_FRAME = 250;

function sameInfo(a, b) {
  return a.reason === b.reason && a.message === b.message && a.exit_code === b.exit_code;
}

export async function taskView(main, taskId) {
  let task;
  try {
    task = await request("GET", `tasks/${encodeURIComponent(taskId)}`);
  } catch (error) {
    main.append(h("h1", {}, "Task"), problem(error));
    return () => {};
  }
  const view = new TaskView(main, task);
  return () => view.close();
}

class TaskView {
  constructor(main, task) {
    this.task = task;
    this.id = task.task_id;
    this.names = [...(task.target_nodes || [])];
    this.index = new Map(this.names.map((name, i) => [name, i]));
    this.states = this.names.map(() => "pending");
    this.info = new Map(); // node -> {reason, message, exit_code}
    this.counts = { pending: this.names.length, running: 0, success: 0, failed: 0 };
    this.dirty = new Set();
    // Nodes whose end came as an event (not from a status answer): the page missed none of
    // them when this reaches the node count (#grid's data-live-ends, read by the tests).
    this.endedLive = new Set();
    this.failuresChanged = true;
    this.headerChanged = true;
    this.frame = 0;
    this.selected = null;
    this.closed = false;
    this.build(main);
    this.applyResults(task.results || []);
    this.schedule();
    this.live = new Live(
      (event) => this.onEvent(event),
      (state, reason) => this.onSocket(state, reason),
    );
    // A finished task's status answer is the whole story; a running one's events replay from
    // the first (which nodes started) and then go on live.
    if (!TERMINAL.has(task.status)) this.live.subscribe(this.id);
  }

  close() {
    this.closed = true;
    this.live.close();
    cancelAnimationFrame(this.frame);
    clearTimeout(this.outputTimer);
    if (this.workflow) this.workflow.close();
    if (this.search) this.search.close();
  }

  build(main) {
    const task = this.task;
    this.badge = h("span", { id: "task-status" });
    this.progress = h("progress", { id: "task-progress", max: "100", value: "0" });
    this.countsLine = h("p", { id: "task-counts", class: "counts" });
    this.socketLine = h("span", { id: "socket-state", class: "muted" });
    this.actions = h("div", { class: "actions", id: "task-actions" });
    this.actionProblem = h("div", { class: "slot" });
    this.message = h("p", { id: "task-message", class: "muted" });
    this.grid = h("div", { id: "grid", class: "grid", role: "group", "aria-label": "nodes" });
    // Cells are made a frame's worth at a time from the first frame on (buildCells, from
    // draw): a thousand buttons put into the page at once, or the first frame's layout of the
    // whole page with a part of them, block it for longer than 50 ms on a small machine.
    this.cells = [];
    if (this.names.length > NAMED_CELLS) this.grid.classList.add("dense");
    this.grid.addEventListener("click", (event) => {
      const cell = event.target.closest(".cell");
      if (cell) this.select(cell.dataset.node);
    });
    this.failures = h("div", { id: "failures" });
    this.detail = h("section", { id: "node-detail", class: "detail" }, h("p", { class: "muted" }, "Click a node for its output."));
    // A workflow's steps, batches and approval gates (workflow.js).
    this.workflow = task.kind === "workflow" ? new WorkflowPanel(task, { refresh: () => this.refresh() }) : null;
    main.append(
      h("h1", {}, "Task ", h("code", { id: "task-id" }, this.id), " ", this.badge),
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "kind"),
        h("dd", {}, task.kind),
        h("dt", {}, "cluster"),
        h("dd", {}, task.cluster_name),
        what(task) ? [h("dt", {}, "what"), h("dd", { class: "what" }, what(task))] : null,
        h("dt", {}, "by"),
        h("dd", {}, task.username || ""),
        h("dt", {}, "started"),
        h("dd", {}, when(task.start_time)),
        task.rerun_of ? [h("dt", {}, "rerun of"), h("dd", {}, link(task.rerun_of, "tasks", task.rerun_of))] : null,
        task.parent_task_id ? [h("dt", {}, "part of"), h("dd", {}, link(task.parent_task_id, "tasks", task.parent_task_id))] : null,
      ),
      h("div", { class: "bar" }, this.progress, this.countsLine, this.socketLine),
      this.message,
      this.actions,
      this.actionProblem,
      ...(this.workflow ? [this.workflow.element] : []),
      this.grid,
      h("div", { class: "split" }, this.failures, this.detail),
    );
    this.renderActions();
  }

  // --- the model ----------------------------------------------------------------------------

  setNode(name, state, info) {
    const i = this.index.get(name);
    if (i === undefined) return;
    const old = this.states[i];
    // A replayed "started" never undoes an end already known from the status answer.
    if (state === "running" && (old === "success" || old === "failed")) return;
    const known = this.info.get(name);
    // The final status answer repeats what events said: nothing to redraw then.
    if (old === state && (!info || (known && sameInfo(known, info)))) return;
    if (info) this.info.set(name, info);
    if (old !== state) {
      this.counts[old] -= 1;
      this.counts[state] += 1;
      this.states[i] = state;
      if (old === "failed" || state === "failed") this.failuresChanged = true;
    } else if (state === "failed") {
      this.failuresChanged = true;
    }
    this.dirty.add(i);
    this.headerChanged = true;
    if (name === this.selected) this.detailChanged = true;
  }

  applyResults(results) {
    for (const r of results) {
      const state = r.status === "success" ? "success" : "failed";
      this.setNode(r.node, state, { reason: r.reason, message: r.message, exit_code: r.exit_code });
    }
  }

  onEvent(event) {
    if (event.task_id !== this.id || this.closed) return;
    const data = event.data || {};
    if (event.type === "node" && data.node) {
      const state = STATES.includes(data.status) ? data.status : "failed";
      if (state !== "running" && this.index.has(data.node)) this.endedLive.add(data.node);
      const info = state === "running" ? null : { reason: data.reason, message: event.message, exit_code: data.exit_code };
      this.setNode(data.node, state, info);
      if (data.node === this.selected && state !== "running") this.fetchOutput();
    } else if (event.type === "output") {
      // Most of a busy task's events: output of nodes nobody is looking at. They change
      // nothing on the page, so they ask for no frame.
      if (data.node === this.selected) this.fetchOutput();
      return;
    } else if (event.type === "progress" && event.message) {
      this.message.textContent = event.message;
    } else if (event.type === "step" && this.workflow) {
      this.workflow.onStep(event);
    } else if (event.type === "complete") {
      this.refresh();
    } else if (event.type === "error") {
      this.socketLine.textContent = event.message;
    }
    this.schedule();
  }

  onSocket(state, reason) {
    if (state === "unauthorized") {
      this.socketLine.textContent = `live updates stopped: ${reason || "log in again"}`;
    } else if (state === "reconnecting") {
      this.socketLine.textContent = "reconnecting…";
    } else {
      this.socketLine.textContent = TERMINAL.has(this.task.status) ? "" : "live";
    }
  }

  async refresh() {
    try {
      this.task = await request("GET", `tasks/${encodeURIComponent(this.id)}`);
    } catch (error) {
      this.actionProblem.replaceChildren(problem(error));
      return;
    }
    this.applyResults(this.task.results || []);
    if (this.workflow) this.workflow.update(this.task);
    if (TERMINAL.has(this.task.status)) {
      this.socketLine.textContent = "";
      this.live.close();
    }
    this.headerChanged = true;
    this.renderActions();
    if (this.selected) this.fetchOutput();
    this.schedule();
  }

  // --- drawing, once per frame ------------------------------------------------------------------

  schedule() {
    if (!this.frame && !this.closed) this.frame = requestAnimationFrame(() => this.draw());
  }

  // The next CELLS_PER_FRAME cells of the grid, drawn as their nodes are now.
  buildCells() {
    const from = this.cells.length;
    const to = Math.min(this.names.length, from + CELLS_PER_FRAME);
    const named = this.names.length <= NAMED_CELLS;
    const made = [];
    for (let i = from; i < to; i += 1) {
      const name = this.names[i];
      const cell = h("button", { type: "button", dataset: { node: name } }, named ? name : "");
      this.paintCell(i, cell);
      made.push(cell);
    }
    this.cells.push(...made);
    this.grid.append(...made);
  }

  paintCell(i, cell) {
    const state = this.states[i];
    cell.className = `cell n-${state}${this.names[i] === this.selected ? " selected" : ""}`;
    const info = this.info.get(this.names[i]);
    cell.title = `${this.names[i]}: ${state}${info && info.reason ? ` (${info.reason})` : ""}`;
  }

  draw() {
    this.frame = 0;
    // At most CELLS_PER_FRAME cells made or restyled a frame: when every node of a large task
    // starts or ends at once, restyling a thousand cells in one frame blocks the page for
    // longer than 50 ms. A cell not made yet is made as its node is then.
    let budget = CELLS_PER_FRAME;
    if (this.cells.length < this.names.length) {
      this.buildCells();
      budget = 0;
    }
    for (const i of this.dirty) {
      if (budget <= 0) break;
      this.dirty.delete(i);
      if (i >= this.cells.length) continue;
      budget -= 1;
      this.paintCell(i, this.cells[i]);
    }
    if (this.dirty.size || this.cells.length < this.names.length) this.schedule();
    const ends = String(this.endedLive.size);
    if (this.grid.dataset.liveEnds !== ends) this.grid.dataset.liveEnds = ends;
    if (this.headerChanged) this.drawHeader();
    if (this.failuresChanged) this.drawFailures();
    if (this.detailChanged) this.drawDetail();
  }

  drawHeader() {
    this.headerChanged = false;
    const c = this.counts;
    const total = this.names.length;
    const done = c.success + c.failed;
    this.badge.replaceChildren(statusBadge(this.task.status));
    this.progress.value = total ? Math.round((100 * done) / total) : this.task.progress || 0;
    this.countsLine.textContent =
      `${total} nodes: ${c.success} succeeded, ${c.failed} failed, ${c.running} running, ${c.pending} waiting` +
      (this.task.duration !== null && this.task.duration !== undefined && TERMINAL.has(this.task.status) ? ` · took ${seconds(this.task.duration)}` : "");
    if (this.task.error) this.message.textContent = this.task.error;
  }

  drawFailures() {
    this.failuresChanged = false;
    const failed = this.names.filter((_, i) => this.states[i] === "failed");
    if (!failed.length) {
      this.failures.replaceChildren();
      return;
    }
    const shown = failed.slice(0, 200);
    const more = failed.length - shown.length;
    this.failures.replaceChildren(
      h("h2", {}, `Failed nodes (${failed.length})`),
      h(
        "table",
        { class: "reasons" },
        h("thead", {}, h("tr", {}, h("th", {}, "node"), h("th", {}, "reason"), h("th", {}, "exit"), h("th", {}, "message"))),
        h(
          "tbody",
          {},
          shown.map((name) => {
            const info = this.info.get(name) || {};
            return h(
              "tr",
              { dataset: { node: name } },
              h("td", {}, h("button", { type: "button", class: "linkish", onclick: () => this.select(name) }, name)),
              h("td", {}, info.reason || ""),
              h("td", { class: "num" }, info.exit_code ?? ""),
              h("td", { class: "message" }, info.message || ""),
            );
          }),
        ),
      ),
      h("p", { class: "muted" }, more > 0 ? `and ${more} more` : ""),
    );
  }

  // --- one node's output --------------------------------------------------------------------

  select(name) {
    if (!this.index.has(name)) return;
    const before = this.selected;
    this.selected = name;
    if (before !== null && this.index.has(before)) this.dirty.add(this.index.get(before));
    this.dirty.add(this.index.get(name));
    this.streams = {};
    for (const stream of ["stdout", "stderr"]) {
      const pre = h("pre", { class: `output ${stream}`, id: `output-${stream}` });
      this.streams[stream] = { have: 0, decoder: new TextDecoder(), pre, writer: new AnsiWriter(pre) };
    }
    this.detailInfo = h("div", { id: "node-info" });
    this.outputProblem = h("div", { class: "slot" });
    // The search box keeps its query from one node to the next (search.js).
    const query = this.search ? this.search.query : "";
    if (this.search) this.search.close();
    this.search = new OutputSearch([this.streams.stdout.pre, this.streams.stderr.pre]);
    this.search.input.value = query;
    this.search.search(query);
    this.detail.replaceChildren(
      h("h2", {}, "Node ", h("code", { id: "node-name" }, name)),
      this.detailInfo,
      this.outputProblem,
      this.search.element,
      h("h3", {}, "stdout"),
      this.streams.stdout.pre,
      h("h3", {}, "stderr"),
      this.streams.stderr.pre,
    );
    this.detailChanged = true;
    this.schedule();
    this.fetching = false;
    this.fetchOutput();
  }

  drawDetail() {
    this.detailChanged = false;
    if (!this.selected) return;
    const state = this.states[this.index.get(this.selected)];
    const info = this.info.get(this.selected) || {};
    this.detailInfo.replaceChildren(
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "state"),
        h("dd", { id: "node-state" }, state),
        info.reason ? [h("dt", {}, "reason"), h("dd", { id: "node-reason" }, info.reason)] : null,
        info.exit_code !== undefined && info.exit_code !== null ? [h("dt", {}, "exit code"), h("dd", {}, info.exit_code)] : null,
        info.message ? [h("dt", {}, "message"), h("dd", { class: "message" }, info.message)] : null,
      ),
    );
  }

  // The stored output, read from where the page has got to (a Range request), so a running
  // node's output grows as its events arrive and nothing is shown twice. One read at a time;
  // events that come meanwhile ask for one more.
  async fetchOutput() {
    if (!this.selected) return;
    if (this.fetching) {
      this.again = true;
      return;
    }
    const name = this.selected;
    const streams = this.streams;
    this.fetching = true;
    this.again = false;
    try {
      for (const stream of ["stdout", "stderr"]) {
        const s = streams[stream];
        const chunk = await bytes(`tasks/${encodeURIComponent(this.id)}/output`, { node: name, stream }, s.have);
        if (this.selected !== name) return;
        s.have += chunk.length;
        const text = s.decoder.decode(chunk, { stream: true });
        // Server text only ever becomes text nodes (colors: spans of fixed classes), so
        // markup in output stays visible as text.
        if (text) {
          s.writer.write(text);
          this.search.appended(s.pre);
        }
      }
      this.outputProblem.replaceChildren();
    } catch (error) {
      if (this.selected === name) this.outputProblem.replaceChildren(problem(error));
    } finally {
      if (this.selected === name) {
        this.fetching = false;
        const state = this.states[this.index.get(name)];
        if (this.again) {
          this.fetchOutput();
        } else if (state === "running") {
          // Output is stored a moment after its event: look once more shortly.
          clearTimeout(this.outputTimer);
          this.outputTimer = setTimeout(() => this.fetchOutput(), 1000);
        }
      }
    }
  }

  // --- cancel and rerun (operators only) -----------------------------------------------------

  renderActions() {
    const task = this.task;
    const buttons = [];
    if (can("operator") && !TERMINAL.has(task.status)) {
      buttons.push(h("button", { type: "button", id: "cancel", class: "danger", onclick: () => this.cancel() }, "Cancel task"));
    }
    if (can("operator") && TERMINAL.has(task.status) && task.failed_count > 0) {
      buttons.push(h("button", { type: "button", id: "rerun-failed", onclick: () => this.rerun() }, `Rerun ${task.failed_count} failed`));
    }
    this.actions.replaceChildren(...buttons);
  }

  async cancel() {
    if (!window.confirm(`Cancel task ${this.id}?`)) return;
    await this.act(async () => {
      await request("POST", `automation/${routeOf(this.task.kind)}/cancel/${encodeURIComponent(this.id)}`);
      await this.refresh();
    });
  }

  async rerun() {
    await this.act(async () => {
      const started = await request("POST", `automation/${routeOf(this.task.kind)}/rerun/${encodeURIComponent(this.id)}`, {
        body: { only_failed: true },
      });
      window.location.hash = route("tasks", started.task_id);
    });
  }

  async act(work) {
    this.actionProblem.replaceChildren();
    for (const button of this.actions.querySelectorAll("button")) button.disabled = true;
    try {
      await work();
    } catch (error) {
      this.actionProblem.replaceChildren(problem(error instanceof ApiError ? error : String(error)));
      this.renderActions();
    }
  }
}
