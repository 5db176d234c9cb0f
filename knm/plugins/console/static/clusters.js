// The clusters and what their nodes look like now: node counts, Ready / NotReady, cordoned (by
// knm or by hand) and the node locks tasks hold. The Clusters page and the dashboard share it.

import { all } from "./api.js";
import { h, link, problem } from "./dom.js";

// A node's state as the API reports it: `ready`/`schedulable` are null where the provider cannot
// tell (a static inventory); `info.cordoned_by` is the task whose cordon knm put on the node.
export function cordonOf(node) {
  if (node.schedulable !== false) return null;
  return node.info && node.info.cordoned_by ? { by: "knm", task: node.info.cordoned_by } : { by: "hand" };
}

export function summarize(nodes) {
  const counts = { nodes: nodes.length, ready: 0, notReady: 0, unknown: 0, byKnm: 0, byHand: 0 };
  for (const node of nodes) {
    if (node.ready === true) counts.ready += 1;
    else if (node.ready === false) counts.notReady += 1;
    else counts.unknown += 1;
    const cordon = cordonOf(node);
    if (cordon && cordon.by === "knm") counts.byKnm += 1;
    else if (cordon) counts.byHand += 1;
  }
  return counts;
}

export function cordonedText(counts) {
  const total = counts.byKnm + counts.byHand;
  if (!total) return "0";
  const parts = [];
  if (counts.byKnm) parts.push(`${counts.byKnm} by knm`);
  if (counts.byHand) parts.push(`${counts.byHand} by hand`);
  return `${total} (${parts.join(", ")})`;
}

// Every lock active tasks hold, by cluster name (one list for all clusters).
export async function locksByCluster(clusterName) {
  const found = new Map();
  const locks = await all("locks", "locks", clusterName ? { cluster_name: clusterName } : {});
  for (const lock of locks) {
    if (!found.has(lock.cluster_name)) found.set(lock.cluster_name, []);
    found.get(lock.cluster_name).push(lock);
  }
  return found;
}

const HEADINGS = ["cluster", "kind", "nodes", "Ready", "NotReady", "cordoned", "locks", "description"];

// A table of `clusters`, one row each (tr[data-cluster]), filled in as each cluster's nodes
// arrive; the node count is the row's first td.num.
export async function clusterTable(clusters, id) {
  const body = h("tbody");
  const table = h("table", { class: "clusters", id }, h("thead", {}, h("tr", {}, HEADINGS.map((t) => h("th", {}, t)))), body);
  let locks = new Map();
  let lockProblem = null;
  try {
    locks = await locksByCluster();
  } catch (error) {
    lockProblem = error;
  }
  const rows = clusters.map((cluster) => {
    const cells = {
      nodes: h("td", { class: "num nodes" }, "…"),
      ready: h("td", { class: "num ready" }, ""),
      notReady: h("td", { class: "num not-ready" }, ""),
      cordoned: h("td", { class: "num cordoned" }, ""),
      locks: h("td", { class: "num locks" }, lockCell(locks.get(cluster.name) || [], lockProblem)),
    };
    body.append(
      h(
        "tr",
        { dataset: { cluster: cluster.name } },
        h("td", {}, link(cluster.name, "clusters", cluster.name)),
        h("td", {}, cluster.kind),
        cells.nodes,
        cells.ready,
        cells.notReady,
        cells.cordoned,
        cells.locks,
        h("td", {}, cluster.description || ""),
      ),
    );
    return { cluster, cells };
  });
  const filled = Promise.all(
    rows.map(async ({ cluster, cells }) => {
      try {
        const nodes = await all(`clusters/${encodeURIComponent(cluster.name)}/nodes`, "nodes");
        const counts = summarize(nodes);
        cells.nodes.textContent = String(counts.nodes);
        // A provider that cannot tell (a static inventory) shows a dash, not a zero.
        cells.ready.textContent = counts.unknown === counts.nodes && counts.nodes ? "—" : String(counts.ready);
        cells.notReady.textContent = counts.unknown === counts.nodes && counts.nodes ? "—" : String(counts.notReady);
        cells.cordoned.textContent = cordonedText(counts);
        if (counts.notReady) cells.notReady.classList.add("bad");
        if (counts.byKnm + counts.byHand) cells.cordoned.classList.add("warn");
      } catch (error) {
        cells.nodes.textContent = "?";
        cells.nodes.title = error.detail || error.message;
        cells.cordoned.replaceChildren(h("span", { class: "muted" }, error.detail || error.message));
      }
    }),
  );
  return { table, filled };
}

function lockCell(locks, error) {
  if (error) return h("span", { title: error.detail || error.message }, "?");
  if (!locks.length) return "0";
  return h("span", { title: locks.map((l) => `${l.node}: ${l.holder} (${l.username || "?"})`).join("\n") }, `${locks.length}: ${locks.map((l) => l.node).join(", ")}`);
}

export async function clustersView(main) {
  main.append(h("h1", {}, "Clusters"));
  let clusters;
  try {
    clusters = await all("clusters", "clusters");
  } catch (error) {
    main.append(problem(error));
    return;
  }
  if (!clusters.length) {
    main.append(h("p", { class: "muted" }, "No clusters registered yet: an admin adds them through the API (POST /api/v1/clusters)."));
    return;
  }
  const { table, filled } = await clusterTable(clusters, "cluster-list");
  main.append(table);
  await filled;
}
