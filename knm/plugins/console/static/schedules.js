// Schedules: every role reads them; their owner (an operator) or an admin pauses, resumes and
// deletes them. One schedule's next five fire times and its runs, with the tasks they started.

import { all, can, request, user } from "./api.js";
import { act, confirmButton, pager, table } from "./adminkit.js";
import { h, link, problem, when } from "./dom.js";
import { statusBadge } from "./tasks.js";

const REFRESH_MS = 5000;

export async function schedulesView(main) {
  const detail = h("div", { id: "schedule-detail" });
  const list = h("div", { id: "schedules-list" }, h("p", { class: "muted" }, "Loading…"));
  main.append(h("h1", {}, "Schedules"), list, detail);
  await load(list, detail);
  // The open schedule's runs are read again every few seconds, until the page is left.
  return () => {
    clearTimeout(Number(detail.dataset.timer));
    delete detail.dataset.schedule;
  };
}

function mayChange(s) {
  const me = user();
  return can("admin") || (can("operator") && me && me.id === s.owner_id);
}

function timing(s) {
  return s.cron ? `${s.cron} (${s.timezone})` : `every ${s.interval_seconds}s`;
}

async function load(list, detail) {
  let schedules;
  try {
    schedules = await all("schedules", "schedules");
  } catch (error) {
    list.replaceChildren(problem(error));
    return;
  }
  const reload = () => load(list, detail);
  list.replaceChildren(
    table(
      "schedules",
      ["name", "kind", "owner", "when", "state", "next fire", "last fired", ""],
      schedules.map((s) => {
        const slot = h("div", { class: "row-error" });
        const show = h("button", { type: "button", class: "linkish schedule-show" }, "Runs and next fires");
        show.addEventListener("click", () => open(detail, s.id));
        const actions = [show];
        if (mayChange(s)) {
          const toggle = h("button", { type: "button", class: s.enabled ? "schedule-pause" : "schedule-resume" }, s.enabled ? "Pause" : "Resume");
          toggle.addEventListener("click", () =>
            act(toggle, slot, async () => {
              await request("POST", `schedules/${s.id}/${s.enabled ? "pause" : "resume"}`);
              await reload();
              if (detail.dataset.schedule === String(s.id)) await open(detail, s.id);
            }),
          );
          const remove = confirmButton("Delete", { class: "danger schedule-delete" }, (button) =>
            act(button, slot, async () => {
              await request("DELETE", `schedules/${s.id}`);
              if (detail.dataset.schedule === String(s.id)) {
                clearTimeout(Number(detail.dataset.timer));
                delete detail.dataset.schedule;
                detail.replaceChildren();
              }
              await reload();
            }),
          );
          actions.push(toggle, remove);
        }
        return h(
          "tr",
          { dataset: { schedule: s.name } },
          h("td", { title: s.description || "" }, s.name),
          h("td", {}, s.kind),
          h("td", {}, s.owner_name),
          h("td", {}, h("code", {}, timing(s))),
          h("td", { class: "schedule-state" }, s.enabled ? "active" : "paused"),
          h("td", {}, when(s.next_fire_at)),
          h("td", {}, when(s.last_fired_at)),
          h("td", {}, h("div", { class: "actions" }, actions), slot),
        );
      }),
      "No schedules.",
    ),
  );
}

async function open(detail, id, page = 1) {
  clearTimeout(Number(detail.dataset.timer));
  detail.dataset.schedule = String(id);
  try {
    const [s, runs] = await Promise.all([
      request("GET", `schedules/${id}`),
      request("GET", `schedules/${id}/runs`, { query: { page, page_size: 20 } }),
    ]);
    // Another schedule was opened (or this one deleted) while these were read.
    if (detail.dataset.schedule !== String(id)) return;
    detail.replaceChildren(
      h("h2", {}, `${s.name}`),
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "runs"), h("dd", {}, `${s.kind} as ${s.owner_name}, ${timing(s)}`),
        h("dt", {}, "misfires"), h("dd", {}, `${s.misfire_policy}, at most ${s.max_concurrent_runs} at once`),
        h("dt", {}, "request"), h("dd", { class: "what" }, JSON.stringify(s.request)),
      ),
      h("h3", {}, "Next fire times"),
      s.next_fire_times.length
        ? h("ol", { id: "schedule-next" }, s.next_fire_times.map((t) => h("li", {}, when(t))))
        : h("p", { class: "muted", id: "schedule-next" }, s.enabled ? "None: past its end." : "None while paused."),
      h("h3", {}, "Runs"),
      table(
        "schedule-runs",
        ["fire time", "status", "task", "reason"],
        runs.runs.map((r) =>
          h(
            "tr",
            {},
            h("td", {}, when(r.fire_time)),
            h("td", {}, statusBadge(r.status)),
            h("td", {}, r.task_id ? link(r.task_id, "tasks", r.task_id) : ""),
            h("td", { class: "message" }, r.reason || ""),
          ),
        ),
        "No runs yet.",
      ),
      pager("runs-pager", page, 20, runs.total, "runs", (n) => () => open(detail, id, n)),
    );
  } catch (error) {
    if (detail.dataset.schedule === String(id)) detail.replaceChildren(problem(error));
  }
  if (detail.isConnected && detail.dataset.schedule === String(id)) {
    detail.dataset.timer = String(setTimeout(() => open(detail, id, page), REFRESH_MS));
  }
}
