// Running tasks, then recent ones with failures first, then the clusters and their node counts.

import { request } from "./api.js";
import { h, link, problem } from "./dom.js";
import { taskTable } from "./tasks.js";

const RECENT = 30;
const REFRESH_MS = 5_000;

export async function dashboardView(main) {
  const running = h("section", { id: "running" }, h("h2", {}, "Running"), h("p", { class: "muted" }, "Loading…"));
  const recent = h("section", { id: "recent" }, h("h2", {}, "Recent"), h("p", { class: "muted" }, "Loading…"));
  const clusters = h("section", { id: "clusters" }, h("h2", {}, "Clusters"), h("p", { class: "muted" }, "Loading…"));
  main.append(h("h1", {}, "Dashboard"), running, recent, clusters);
  await Promise.all([showTasks(running, recent), showClusters(clusters)]);
  // The task lists follow along while the page is shown (a few small reads every few seconds).
  let timer = 0;
  let stopped = false;
  const again = () => {
    timer = setTimeout(async () => {
      await showTasks(running, recent);
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

async function showClusters(section) {
  let list;
  try {
    list = await request("GET", "clusters", { query: { page_size: 100 } });
  } catch (error) {
    section.replaceChildren(h("h2", {}, "Clusters"), problem(error));
    return;
  }
  const body = h("tbody");
  section.replaceChildren(
    h("h2", {}, `Clusters (${list.total})`),
    list.clusters.length
      ? h("table", { class: "clusters" }, h("thead", {}, h("tr", {}, ["cluster", "kind", "nodes", "description"].map((t) => h("th", {}, t)))), body)
      : h("p", { class: "muted" }, "No clusters registered yet."),
  );
  await Promise.all(
    list.clusters.map(async (cluster) => {
      const count = h("td", { class: "num" }, "…");
      body.append(h("tr", { dataset: { cluster: cluster.name } }, h("td", {}, cluster.name), h("td", {}, cluster.kind), count, h("td", {}, cluster.description || "")));
      try {
        const nodes = await request("GET", `clusters/${encodeURIComponent(cluster.name)}/nodes`, { query: { page_size: 1 } });
        count.textContent = String(nodes.total);
      } catch (error) {
        count.textContent = "?";
        count.title = error.detail || error.message;
      }
    }),
  );
}
