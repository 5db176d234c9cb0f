// The console's router. Views are plain functions that fill their page and may return a
// cleanup (closing their WebSocket). PAGES is the one list of them: a page is added by a line
// there, which also gives it its link in the top bar.

import { adminView } from "./admin.js";
import { can, logout, user } from "./api.js";
import { clustersView } from "./clusters.js";
import { dashboardView } from "./dashboard.js";
import { h, problem } from "./dom.js";
import { historyView } from "./history.js";
import { libraryView } from "./library.js";
import { loginView } from "./login.js";
import { clusterView } from "./nodes.js";
import { runView } from "./run.js";
import { taskView } from "./task.js";

const main = document.getElementById("view");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
let cleanup = null;
let generation = 0;

function parse() {
  const [path, query = ""] = window.location.hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(query) };
}

// path: the hash's first part ("" for #/); role: the least role that sees the page (others get
// "Not found" and no link); nav: the top bar's label, if the page has a link there; view:
// (page, rest of the path, query) => cleanup, or NOT_FOUND for a path the page does not know.
const NOT_FOUND = Symbol("not found");
const PAGES = [
  { path: "", nav: "Dashboard", view: (page) => dashboardView(page) },
  { path: "run", nav: "Run", role: "operator", view: (page, _rest, params) => runView(page, params) },
  { path: "history", nav: "History", view: (page, _rest, params) => historyView(page, params) },
  { path: "library", nav: "Library", view: (page, rest, params) => libraryView(page, rest, params) },
  { path: "clusters", nav: "Clusters", view: (page, rest, params) => (rest[0] ? clusterView(page, rest[0], params) : clustersView(page)) },
  { path: "admin", nav: "Admin", role: "operator", view: (page, rest, params) => adminView(page, rest, params) },
  { path: "tasks", view: (page, rest) => (rest[0] ? taskView(page, rest[0]) : NOT_FOUND) },
];

function pageOf(parts) {
  const path = parts[0] === "login" ? "" : parts[0] || "";
  return PAGES.find((p) => p.path === path && (!p.role || can(p.role)));
}

function chrome() {
  const me = user();
  nav.replaceChildren(
    ...(me
      ? PAGES.filter((p) => p.nav && (!p.role || can(p.role))).map((p) =>
          h("a", { href: `#/${p.path}`, id: `nav-${p.path || "dashboard"}` }, p.nav),
        )
      : []),
  );
  who.replaceChildren(
    ...(me
      ? [
          h("span", { id: "whoami" }, `${me.username} (${me.role})`),
          " ",
          h("button", { type: "button", id: "logout", class: "linkish", onclick: signOut }, "Log out"),
        ]
      : []),
  );
}

function signOut() {
  logout();
  window.location.hash = "#/login";
  render();
}

async function render() {
  const mine = ++generation;
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  // Each render fills a page of its own: a view still loading when the user moves on fills a
  // page no longer shown instead of mixing into the next one.
  const page = h("div", { class: "page" });
  main.replaceChildren(page);
  chrome();
  const { parts, params } = parse();
  if (!user()) {
    if (parts[0] !== "login") sessionStorage.setItem("knm.console.next", window.location.hash);
    loginView(page, () => {
      const next = sessionStorage.getItem("knm.console.next") || "#/";
      sessionStorage.removeItem("knm.console.next");
      if (window.location.hash === next || (next === "#/" && !window.location.hash)) render();
      else window.location.hash = next === "#/login" ? "#/" : next;
    });
    return;
  }
  try {
    const found = pageOf(parts);
    const done = found ? await found.view(page, parts.slice(1), params) : NOT_FOUND;
    if (done === NOT_FOUND) {
      page.append(h("h1", {}, "Not found"), h("p", {}, "No such page in the console."));
    }
    if (typeof done === "function") {
      if (mine === generation) cleanup = done;
      else done();
    }
  } catch (error) {
    page.append(problem(error));
  }
}

window.addEventListener("hashchange", render);
// A 401 anywhere (the session expired or was revoked): log in again, then come back here.
window.addEventListener("knm:logged-out", () => {
  if (window.location.hash === "#/login") {
    render();
    return;
  }
  sessionStorage.setItem("knm.console.next", window.location.hash);
  window.location.hash = "#/login";
});
render();
