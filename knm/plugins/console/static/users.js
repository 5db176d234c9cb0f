// Users (admins only): create one with a password and a role, change a role, disable or enable,
// reset a password. The API deletes no user: disabling one revokes every session and token.

import { all, request, user } from "./api.js";
import { act, clearErrors, errorSlot, field, showError, table } from "./adminkit.js";
import { h, problem, when } from "./dom.js";

const ROLES = ["viewer", "operator", "admin"];

export async function usersView(main) {
  const list = h("div", { id: "users-list" }, h("p", { class: "muted" }, "Loading…"));
  main.append(
    h("h1", {}, "Users"),
    createForm(() => load(list)),
    h("h2", {}, "Everyone"),
    h("p", { class: "muted" }, "The API deletes no user: disabling one revokes every session and API token of theirs at once."),
    list,
  );
  await load(list);
}

function createForm(reload) {
  const username = h("input", { name: "username", id: "user-username", autocomplete: "off" });
  const password = h("input", { name: "password", id: "user-password", type: "password", autocomplete: "new-password" });
  const role = h("select", { name: "role", id: "user-role" }, ROLES.map((r) => h("option", { value: r }, r)));
  const done = h("p", { class: "note", id: "user-created", role: "status" });
  const button = h("button", { type: "submit", id: "user-create" }, "Create user");
  const form = h(
    "form",
    { class: "card", id: "user-form", autocomplete: "off" },
    h("h2", {}, "New user"),
    h("div", { class: "row" }, field("User name", username), field("Password", password, "at least 8 characters"), field("Role", role)),
    h("div", { class: "form-error" }),
    h("div", {}, button),
    done,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    done.replaceChildren();
    const body = { username: username.value, password: password.value, role: role.value };
    // The password leaves the page with the request, whatever the answer.
    password.value = "";
    try {
      const made = await request("POST", "users", { body });
      clearErrors(form);
      username.value = "";
      await reload();
      done.append(`User ${made.username} (${made.role}) created.`);
    } catch (error) {
      showError(form, error, { 409: "username" });
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

async function load(list) {
  let users;
  try {
    users = await all("users", "users");
  } catch (error) {
    list.replaceChildren(problem(error));
    return;
  }
  const reload = () => load(list);
  list.replaceChildren(
    table("users", ["id", "user", "role", "state", "created", ""], users.map((u) => row(u, reload)), "No users."),
  );
}

function row(u, reload) {
  const slot = h("div", { class: "row-error" });
  const me = user() && user().id === u.id;
  const role = h(
    "select",
    { name: "role", class: "user-role", "aria-label": `role of ${u.username}` },
    ROLES.map((r) => h("option", { value: r, selected: r === u.role }, r)),
  );
  role.addEventListener("change", () =>
    act(role, slot, async () => {
      try {
        await request("PUT", `users/${u.id}`, { body: { role: role.value } });
      } catch (error) {
        role.value = u.role;
        throw error;
      }
      await reload();
    }),
  );
  const toggle = h(
    "button",
    { type: "button", class: u.disabled ? "user-enable" : "user-disable danger" },
    u.disabled ? "Enable" : "Disable",
  );
  toggle.addEventListener("click", () =>
    act(toggle, slot, async () => {
      await request("PUT", `users/${u.id}`, { body: { disabled: !u.disabled } });
      await reload();
    }),
  );
  return h(
    "tr",
    { dataset: { user: u.username } },
    h("td", { class: "num" }, u.id),
    h("td", {}, u.username, me ? " (you)" : ""),
    h("td", {}, role),
    h("td", { class: "user-state" }, u.disabled ? "disabled" : "active"),
    h("td", {}, when(u.created_at)),
    h("td", {}, h("div", { class: "actions" }, toggle, resetForm(u)), slot),
  );
}

// A new password for someone who lost theirs; the field is emptied as soon as it is sent.
function resetForm(u) {
  const password = h("input", { name: "password", type: "password", autocomplete: "new-password", placeholder: "new password", class: "user-new-password" });
  const button = h("button", { type: "submit" }, "Reset password");
  const note = h("span", { class: "note", role: "status" });
  const form = h("form", { class: "inline" }, password, button, errorSlot("password"), h("div", { class: "form-error" }), note);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    note.replaceChildren();
    const body = { password: password.value };
    password.value = "";
    try {
      await request("PUT", `users/${u.id}/password`, { body });
      clearErrors(form);
      note.append("Password reset; their sessions and tokens are revoked.");
    } catch (error) {
      showError(form, error);
    } finally {
      button.disabled = false;
    }
  });
  return h("details", {}, h("summary", {}, "Password…"), form);
}
