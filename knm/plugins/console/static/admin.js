// The admin area (#/admin/<section>): users, API tokens, credentials, schedules,
// notifications and the audit log, each shown to the roles the API lets use it. Schedules and
// notifications are plugins' routes: their section shows only when the API answers them.

import { can, request } from "./api.js";
import { auditView } from "./audit.js";
import { credentialsView } from "./credentials.js";
import { h, route } from "./dom.js";
import { notificationsView } from "./notifications.js";
import { schedulesView } from "./schedules.js";
import { tokensView } from "./tokens.js";
import { usersView } from "./users.js";

// role: the least role that sees the section; probe: a read that 404s when the route is absent.
const SECTIONS = [
  { path: "users", label: "Users", role: "admin", view: usersView },
  { path: "tokens", label: "API tokens", role: "operator", view: tokensView },
  { path: "credentials", label: "Credentials", role: "operator", view: credentialsView },
  { path: "schedules", label: "Schedules", role: "operator", probe: "schedules", view: schedulesView },
  {
    path: "notifications",
    label: "Notifications",
    role: "operator",
    probe: "notifications/subscriptions",
    view: notificationsView,
  },
  { path: "audit", label: "Audit log", role: "admin", view: auditView },
];

// Whether each probed route exists, learnt once per page load (routes do not come and go).
const present = new Map();

async function answers(path) {
  if (!present.has(path)) {
    try {
      await request("GET", path, { query: { page_size: 1 } });
      present.set(path, true);
    } catch (error) {
      // Only "no such route" hides a section; any other failure is the section's to show.
      if (error.status === 404) present.set(path, false);
      else return true;
    }
  }
  return present.get(path);
}

export async function adminView(main, rest, params) {
  const shown = [];
  for (const section of SECTIONS) {
    if (can(section.role) && (!section.probe || (await answers(section.probe)))) shown.push(section);
  }
  const current = rest[0] ? shown.find((s) => s.path === rest[0]) : shown[0];
  if (!current) {
    main.append(h("h1", {}, "Not found"), h("p", {}, "No such page in the console."));
    return undefined;
  }
  main.append(
    h(
      "nav",
      { class: "subnav", id: "admin-nav", "aria-label": "admin sections" },
      shown.map((s) =>
        h(
          "a",
          { href: route("admin", s.path), id: `admin-nav-${s.path}`, class: s === current ? "current" : null },
          s.label,
        ),
      ),
    ),
  );
  const page = h("section", { class: "admin", id: `admin-${current.path}` });
  main.append(page);
  return current.view(page, rest.slice(1), params);
}
