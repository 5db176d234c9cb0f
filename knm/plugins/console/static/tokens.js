// API tokens: the caller's own (admins: everyone's), a new one shown once, revoking. A new
// token lives only in the box that shows it: never stored, gone when the box or page goes.

import { all, can, request, user } from "./api.js";
import { act, clearErrors, confirmButton, field, showError, table } from "./adminkit.js";
import { h, problem, when } from "./dom.js";

const ROLES = ["viewer", "operator", "admin"];

export async function tokensView(main) {
  const shown = h("div", { id: "token-shown" });
  const list = h("div", { id: "tokens-list" }, h("p", { class: "muted" }, "Loading…"));
  const reload = () => load(list);
  main.append(h("h1", {}, "API tokens"), createForm(shown, reload), shown, h("h2", {}, can("admin") ? "Everyone's tokens" : "Your tokens"), list);
  await load(list);
  // Leaving the page forgets a token still shown.
  return () => shown.replaceChildren();
}

function createForm(shown, reload) {
  const mine = (user() && user().role) || "viewer";
  const name = h("input", { name: "name", id: "token-name", autocomplete: "off" });
  const role = h(
    "select",
    { name: "role", id: "token-role" },
    ROLES.slice(0, ROLES.indexOf(mine) + 1).map((r) => h("option", { value: r, selected: r === mine }, r)),
  );
  const expires = h("input", { name: "expires_at", id: "token-expires", type: "datetime-local" });
  const button = h("button", { type: "submit", id: "token-create" }, "Create token");
  const form = h(
    "form",
    { class: "card", id: "token-form", autocomplete: "off" },
    h("h2", {}, "New token"),
    h("div", { class: "row" }, field("Name", name), field("Role", role, "at most yours"), field("Expires", expires, "empty: never")),
    h("div", { class: "form-error" }),
    h("div", {}, button),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    shown.replaceChildren();
    const body = { name: name.value, role: role.value };
    if (expires.value) {
      const at = new Date(expires.value);
      body.expires_at = Number.isNaN(at.getTime()) ? expires.value : at.toISOString();
    }
    try {
      const made = await request("POST", "tokens", { body });
      clearErrors(form);
      name.value = "";
      await reload();
      shown.append(onceBox(made, shown));
    } catch (error) {
      showError(form, error, { 409: "name" });
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

// The token, once: a read-only field to copy it from and the warning that it will not be back.
function onceBox(made, shown) {
  const value = h("input", { id: "token-value", readonly: true, value: made.token, size: "60", spellcheck: "false", "aria-label": "the new token" });
  const copied = h("span", { class: "note", role: "status" });
  const copy = h("button", { type: "button", id: "token-copy" }, "Copy");
  copy.addEventListener("click", async () => {
    value.select();
    try {
      await navigator.clipboard.writeText(value.value);
      copied.textContent = "Copied.";
    } catch {
      copied.textContent = "Selected: copy it with Ctrl+C.";
    }
  });
  const close = h("button", { type: "button", id: "token-done", class: "linkish" }, "I have copied it");
  close.addEventListener("click", () => shown.replaceChildren());
  return h(
    "div",
    { class: "card once", role: "alert" },
    h("strong", {}, `Token ${made.name} (${made.role}) created.`),
    h("p", { class: "warning", id: "token-warning" }, "Copy it now: you will not see it again. knm keeps only its hash."),
    h("div", { class: "row" }, value, copy, copied),
    h("div", {}, close),
  );
}

async function load(list) {
  let tokens;
  try {
    tokens = await all("tokens", "tokens");
  } catch (error) {
    list.replaceChildren(problem(error));
    return;
  }
  // Admins see everyone's: name the owners (the token rows carry their ids).
  const owners = new Map();
  if (can("admin")) {
    try {
      for (const u of await all("users", "users")) owners.set(u.id, u.username);
    } catch {
      // The ids stay.
    }
  }
  const reload = () => load(list);
  list.replaceChildren(
    table(
      "tokens",
      ["name", "prefix", "role", ...(can("admin") ? ["owner"] : []), "created", "expires", "last used", "state", ""],
      tokens.map((t) => row(t, owners, reload)),
      "No API tokens yet.",
    ),
  );
}

function state(t) {
  if (t.revoked_at) return "revoked";
  if (t.expires_at && Date.parse(t.expires_at) <= Date.now()) return "expired";
  return "active";
}

function row(t, owners, reload) {
  const slot = h("div", { class: "row-error" });
  const now = state(t);
  const revoke =
    now === "active"
      ? confirmButton("Revoke", { class: "danger token-revoke" }, (button) =>
          act(button, slot, async () => {
            await request("DELETE", `tokens/${t.id}`);
            await reload();
          }),
        )
      : null;
  return h(
    "tr",
    { dataset: { token: t.name } },
    h("td", {}, t.name),
    h("td", {}, h("code", {}, t.prefix)),
    h("td", {}, t.role),
    can("admin") ? h("td", {}, owners.get(t.user_id) || `#${t.user_id}`) : null,
    h("td", {}, when(t.created_at)),
    h("td", {}, t.expires_at ? when(t.expires_at) : "never"),
    h("td", {}, when(t.last_used_at)),
    h("td", { class: "token-state" }, now),
    h("td", {}, revoke, slot),
  );
}
