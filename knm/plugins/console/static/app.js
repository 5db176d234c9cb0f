// The console's router: #/ (dashboard), #/run, #/history, #/tasks/<id>, #/login. Views are
// plain functions that fill <main> and may return a cleanup (closing their WebSocket).

import { can, logout, user } from "./api.js";
import { dashboardView } from "./dashboard.js";
import { h, problem } from "./dom.js";
import { historyView } from "./history.js";
import { loginView } from "./login.js";
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

function chrome() {
  const me = user();
  nav.replaceChildren(
    ...(me
      ? [
          h("a", { href: "#/", id: "nav-dashboard" }, "Dashboard"),
          can("operator") ? h("a", { href: "#/run", id: "nav-run" }, "Run") : null,
          h("a", { href: "#/history", id: "nav-history" }, "History"),
        ].filter(Boolean)
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
    let done;
    if (parts.length === 0 || parts[0] === "login") done = await dashboardView(page);
    else if (parts[0] === "tasks" && parts[1]) done = await taskView(page, parts[1]);
    else if (parts[0] === "history") done = await historyView(page, params);
    else if (parts[0] === "run" && can("operator")) done = await runView(page);
    else page.append(h("h1", {}, "Not found"), h("p", {}, "No such page in the console."));
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
