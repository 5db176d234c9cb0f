// Notification subscriptions: every role reads them and their deliveries; operators create
// subscriptions to a webhook, a Slack-compatible channel or a mailbox (which they own) and test, enable, disable, delete and redeliver their own; admins
// all. The webhook's secret is write-only: never shown, emptied once the form is sent.

import { all, can, request, user } from "./api.js";
import { act, clearErrors, confirmButton, errorSlot, field, names, pager, showError, table } from "./adminkit.js";
import { h, problem, when } from "./dom.js";

const STATES = ["", "pending", "delivered", "dead"];
const POLL_MS = 1000;

export async function notificationsView(main) {
  const deliveries = h("div", { id: "deliveries" });
  const list = h("div", { id: "subscriptions-list" }, h("p", { class: "muted" }, "Loading…"));
  const view = { list, deliveries, timer: 0, reload: null };
  view.reload = () => load(view);
  main.append(h("h1", {}, "Notifications"));
  if (can("operator")) {
    let events = [];
    try {
      events = (await request("GET", "notifications/events")).events;
    } catch (error) {
      main.append(problem(error));
    }
    main.append(createForm(events, view.reload));
  }
  main.append(h("h2", {}, "Subscriptions"), list, deliveries);
  await view.reload();
  return () => clearTimeout(view.timer);
}

function mayChange(s) {
  const me = user();
  return can("admin") || (can("operator") && me && me.username.toLowerCase() === String(s.owner).toLowerCase());
}

// The fields of each target type. Only the chosen type's are in the form, so the server's error
// about `target.url` lands beside the one URL field shown. Secrets (a webhook's signing secret,
// a Slack URL, which is its credential, an SMTP password) are password inputs, emptied once sent.
const TARGETS = {
  webhook: () => {
    const url = h("input", { name: "target.url", id: "hook-url", type: "url", size: "48", placeholder: "https://hooks.example.com/knm" });
    const secret = h("input", { name: "target.secret", id: "hook-secret", type: "password", autocomplete: "new-password" });
    return {
      fields: [field("URL", url), field("Secret", secret, "signs each body (HMAC-SHA256); write-only")],
      secrets: [secret],
      target: () => ({ type: "webhook", url: url.value, ...(secret.value ? { secret: secret.value } : {}) }),
    };
  },
  slack: () => {
    const url = h("input", { name: "target.url", id: "hook-slack-url", type: "password", size: "48", autocomplete: "new-password", placeholder: "https://hooks.slack.com/services/…" });
    return {
      fields: [field("Incoming webhook URL", url, "the URL is its credential: write-only")],
      secrets: [url],
      target: () => ({ type: "slack", url: url.value }),
    };
  },
  email: () => {
    const input = (name, id, props = {}) => h("input", { name: `target.${name}`, id: `hook-${id}`, autocomplete: "off", ...props });
    const host = input("host", "host", { placeholder: "smtp.example.com" });
    const port = input("port", "port", { inputmode: "numeric", size: "6", value: "587" });
    const security = h(
      "select",
      { name: "target.security", id: "hook-security" },
      ["starttls", "tls", "none"].map((v) => h("option", { value: v }, v)),
    );
    const username = input("username", "username");
    const password = input("password", "password", { type: "password", autocomplete: "new-password" });
    const from = input("from_addr", "from", { placeholder: "knm@example.com" });
    const to = input("to", "to", { size: "40", placeholder: "ops@example.com, oncall@example.com" });
    return {
      fields: [
        field("SMTP host", host),
        field("Port", port),
        field("Security", security, "tls: implicit TLS; none: a trusted relay"),
        field("Username", username, "empty: no login"),
        field("Password", password, "write-only"),
        field("From", from),
        field("To", to, "comma-separated"),
      ],
      secrets: [password],
      target: () => {
        const target = { type: "email", host: host.value, security: security.value, from_addr: from.value, to: names(to.value) || [] };
        // A port that is not a number goes as typed: the server names the field.
        if (port.value.trim()) target.port = /^\d+$/.test(port.value.trim()) ? Number(port.value.trim()) : port.value;
        if (username.value) target.username = username.value;
        if (password.value) target.password = password.value;
        return target;
      },
    };
  },
};

function createForm(events, reload) {
  const name = h("input", { name: "name", id: "hook-name", autocomplete: "off" });
  const type = h("select", { name: "target.type", id: "hook-type" }, Object.keys(TARGETS).map((t) => h("option", { value: t }, t)));
  const targetRow = h("div", { class: "row", id: "hook-target" });
  let target = null;
  const drawTarget = () => {
    target = TARGETS[type.value]();
    targetRow.replaceChildren(...target.fields);
  };
  type.addEventListener("change", drawTarget);
  drawTarget();
  const kinds = h("input", { name: "kinds", id: "hook-kinds", placeholder: "any" });
  const clusters = h("input", { name: "clusters", id: "hook-clusters", placeholder: "any" });
  const boxes = events.map((e) =>
    h("input", { type: "checkbox", name: "events", value: e, class: "hook-event", checked: e === "task.failed" }),
  );
  const done = h("p", { class: "note", id: "hook-created", role: "status" });
  const button = h("button", { type: "submit", id: "hook-create" }, "Create subscription");
  const form = h(
    "form",
    { class: "card", id: "hook-form", autocomplete: "off", novalidate: true },
    h("h2", {}, "New subscription"),
    h("div", { class: "row" }, field("Name", name), field("Sends to", type)),
    targetRow,
    h("fieldset", { id: "hook-events" }, h("legend", {}, "Events"), h("div", { class: "row" }, boxes.map((b) => h("label", { class: "inline" }, b, ` ${b.value}`))), errorSlot("events")),
    h("div", { class: "row" }, field("Kinds", kinds, "comma-separated; empty: any"), field("Clusters", clusters, "comma-separated; empty: any")),
    h("div", { class: "form-error" }),
    h("div", {}, button),
    done,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    done.replaceChildren();
    const body = {
      name: name.value,
      events: boxes.filter((b) => b.checked).map((b) => b.value),
      target: target.target(),
      kinds: names(kinds.value) || [],
      clusters: names(clusters.value) || [],
    };
    // The secrets leave the page with this request, whatever its answer.
    for (const secret of target.secrets) secret.value = "";
    try {
      const made = await request("POST", "notifications/subscriptions", { body });
      clearErrors(form);
      name.value = "";
      await reload();
      done.append(`Subscription ${made.name} created.`);
    } catch (error) {
      showError(form, error, { 409: "name" });
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

async function load(view) {
  let subscriptions;
  try {
    subscriptions = await all("notifications/subscriptions", "subscriptions");
  } catch (error) {
    view.list.replaceChildren(problem(error));
    return;
  }
  view.list.replaceChildren(
    table(
      "subscriptions",
      ["name", "owner", "events", "target", "secret", "filters", "state", ""],
      subscriptions.map((s) => row(view, s)),
      "No subscriptions yet.",
    ),
  );
}

function row(view, s) {
  const slot = h("div", { class: "row-error" });
  const show = h("button", { type: "button", class: "linkish subscription-deliveries" }, "Deliveries");
  show.addEventListener("click", () => deliveries(view, s));
  const actions = [show];
  if (mayChange(s)) {
    const test = h("button", { type: "button", class: "subscription-test" }, "Send a test");
    test.addEventListener("click", () =>
      act(test, slot, async () => {
        await request("POST", `notifications/subscriptions/${s.id}/test`);
        await deliveries(view, s);
      }),
    );
    const toggle = h("button", { type: "button", class: "subscription-toggle" }, s.enabled ? "Disable" : "Enable");
    toggle.addEventListener("click", () =>
      act(toggle, slot, async () => {
        await request("PUT", `notifications/subscriptions/${s.id}`, { body: { enabled: !s.enabled } });
        await view.reload();
      }),
    );
    const remove = confirmButton("Delete", { class: "danger subscription-delete" }, (button) =>
      act(button, slot, async () => {
        await request("DELETE", `notifications/subscriptions/${s.id}`);
        if (view.deliveries.dataset.subscription === String(s.id)) {
          clearTimeout(view.timer);
          view.deliveries.replaceChildren();
        }
        await view.reload();
      }),
    );
    actions.push(test, toggle, remove);
  }
  const filters = [
    s.kinds.length ? `kinds: ${s.kinds.join(", ")}` : "",
    s.clusters.length ? `clusters: ${s.clusters.join(", ")}` : "",
    s.statuses.length ? `statuses: ${s.statuses.join(", ")}` : "",
  ].filter(Boolean);
  // The target without its secret, as the API gives it (a URL, a mail relay).
  const target = s.target.url || s.target.host || "";
  return h(
    "tr",
    { dataset: { subscription: s.name } },
    h("td", {}, s.name),
    h("td", {}, s.owner),
    h("td", {}, s.events.join(", ")),
    h("td", { class: "what" }, `${s.target_type} ${target}`),
    h("td", {}, s.has_secret ? "set" : "—"),
    h("td", {}, filters.join("; ") || "none"),
    h("td", { class: "subscription-state" }, s.enabled ? "enabled" : "disabled"),
    h("td", {}, h("div", { class: "actions" }, actions), slot),
  );
}

// A subscription's deliveries, newest first; while any is pending they are read again each
// second, so a test send is seen arriving.
async function deliveries(view, s, state = "", page = 1) {
  clearTimeout(view.timer);
  const box = view.deliveries;
  box.dataset.subscription = String(s.id);
  const pick = h("select", { id: "delivery-state", "aria-label": "state" }, STATES.map((v) => h("option", { value: v, selected: v === state }, v || "any state")));
  pick.addEventListener("change", () => deliveries(view, s, pick.value, 1));
  let data;
  try {
    data = await request("GET", `notifications/subscriptions/${s.id}/deliveries`, { query: { state, page, page_size: 20 } });
  } catch (error) {
    box.replaceChildren(h("h2", {}, `Deliveries of ${s.name}`), problem(error));
    return;
  }
  if (box.dataset.subscription !== String(s.id)) return;
  box.replaceChildren(
    h("h2", {}, `Deliveries of ${s.name}`),
    h("div", { class: "filters" }, h("label", {}, "state ", pick)),
    table(
      "deliveries-table",
      ["id", "event", "state", "attempts", "last answer", "last error", "created", "delivered", ""],
      data.deliveries.map((d) => deliveryRow(view, s, d, state, page)),
      "No deliveries.",
    ),
    pager("deliveries-pager", page, 20, data.total, "deliveries", (n) => () => deliveries(view, s, state, n)),
  );
  if (data.deliveries.some((d) => d.state === "pending")) {
    view.timer = setTimeout(() => deliveries(view, s, state, page), POLL_MS);
  }
}

function deliveryRow(view, s, d, state, page) {
  const slot = h("div", { class: "row-error" });
  const last = d.attempt_log.length ? d.attempt_log[d.attempt_log.length - 1] : null;
  let again = null;
  if (mayChange(s) && d.state !== "pending") {
    again = h("button", { type: "button", class: "delivery-redeliver" }, "Redeliver");
    again.addEventListener("click", () =>
      act(again, slot, async () => {
        await request("POST", `notifications/deliveries/${d.id}/redeliver`);
        await deliveries(view, s, state, page);
      }),
    );
  }
  return h(
    "tr",
    { dataset: { delivery: String(d.id), event: d.event, state: d.state } },
    h("td", { class: "num" }, d.id),
    h("td", {}, d.event),
    h("td", { class: "delivery-state" }, h("span", { class: `badge d-${d.state}` }, d.state)),
    h("td", { class: "num" }, d.attempts),
    h("td", {}, last ? `${last.status_code ?? "no answer"} in ${last.latency_ms} ms` : ""),
    h("td", { class: "message" }, d.last_error || ""),
    h("td", {}, when(d.created_at)),
    h("td", {}, when(d.delivered_at)),
    h("td", {}, again, slot),
  );
}
