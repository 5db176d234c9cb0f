// Running tasks, then recent ones with failures first, then the clusters: node counts, Ready and
// NotReady, cordoned nodes (by knm or by hand) and the node locks tasks hold.

import { all, request } from "./api.js";
import { clusterTable } from "./clusters.js";
import { h, link, problem } from "./dom.js";
import { taskTable } from "./tasks.js";

const RECENT = 30;
const REFRESH_MS = 5_000;
const CLUSTER_EVERY = 2;

export async function dashboardView(main) {
  const running = h("section", { id: "running" }, h("h2", {}, "Running"), h("p", { class: "muted" }, "Loading…"));
  const recent = h("section", { id: "recent" }, h("h2", {}, "Recent"), h("p", { class: "muted" }, "Loading…"));
  const clusters = h("section", { id: "clusters" }, h("h2", {}, "Clusters"), h("p", { class: "muted" }, "Loading…"));
  main.append(h("h1", {}, "Dashboard"), running, recent, clusters);
  await Promise.all([showTasks(running, recent), showClusters(clusters)]);
  // The task lists follow along while the page is shown (a few small reads every few seconds),
  // and the clusters (a read of every node) every CLUSTER_EVERY of those.
  let timer = 0;
  let stopped = false;
  let ticks = 0;
  const again = () => {
    timer = setTimeout(async () => {
      ticks += 1;
      await Promise.all([showTasks(running, recent), ticks % CLUSTER_EVERY ? null : showClusters(clusters, true)]);
      if (!stopped) again();
    }, REFRESH_MS);
  };
  again();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

async function showTasks(running, recent) {
  try {
    const [live, queued, latest] = await Promise.all([
      request("GET", "tasks", { query: { status: "running", page_size: 100 } }),
      request("GET", "tasks", { query: { status: "pending", page_size: 100 } }),
      request("GET", "tasks", { query: { page_size: RECENT } }),
    ]);
    running.replaceChildren(
      h("h2", {}, `Running (${live.total + queued.total})`),
      taskTable([...live.executions, ...queued.executions], "Nothing is running."),
    );
    const rank = (row) => (row.status === "failed" ? 0 : row.status === "cancelled" ? 1 : 2);
    // Failures first; within each group the API's order (newest first) stays.
    const finished = latest.executions
      .filter((row) => row.status !== "running" && row.status !== "pending")
      .map((row, index) => [rank(row), index, row])
      .sort((a, b) => a[0] - b[0] || a[1] - b[1])
      .map((entry) => entry[2]);
    recent.replaceChildren(
      h("h2", {}, "Recent"),
      taskTable(finished, "No finished tasks yet."),
      h("p", {}, link("All tasks…", "history")),
    );
  } catch (error) {
    running.replaceChildren(h("h2", {}, "Running"), problem(error));
    recent.replaceChildren();
  }
}

async function showClusters(section, again = false) {
  let list;
  try {
    list = await all("clusters", "clusters");
  } catch (error) {
    section.replaceChildren(h("h2", {}, "Clusters"), problem(error));
    return;
  }
  if (!list.length) {
    section.replaceChildren(h("h2", {}, "Clusters (0)"), h("p", { class: "muted" }, "No clusters registered yet."));
    return;
  }
  // Node counts, Ready / NotReady, cordoned (by knm or by hand) and locks held, per cluster:
  // filled in as they arrive the first time, swapped in whole when read again.
  const { table, filled } = await clusterTable(list, "dashboard-clusters");
  if (!again) section.replaceChildren(h("h2", {}, `Clusters (${list.length})`), table);
  await filled;
  if (again) section.replaceChildren(h("h2", {}, `Clusters (${list.length})`), table);
}
