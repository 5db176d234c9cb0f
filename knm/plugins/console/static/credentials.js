// Credentials: every role reads them (which secrets each holds, never a secret); admins create,
// change and delete them. The secret fields are write-only: never filled from the server (it
// never sends them), sent only when typed, and emptied as soon as the form is submitted.

import { all, can, request } from "./api.js";
import { act, confirmButton, field, names, showError, table, yesNo } from "./adminkit.js";
import { h, problem, when } from "./dom.js";

const SECRETS = ["password", "private_key", "passphrase"];

export async function credentialsView(main) {
  const editor = h("div", { id: "credential-editor" });
  const list = h("div", { id: "credentials-list" }, h("p", { class: "muted" }, "Loading…"));
  const reload = () => load(list, editor);
  main.append(h("h1", {}, "Credentials"));
  if (can("admin")) {
    const add = h("button", { type: "button", id: "credential-new" }, "New credential");
    add.addEventListener("click", () => edit(editor, null, reload));
    main.append(h("div", { class: "actions" }, add), editor);
  } else {
    main.append(h("p", { class: "muted" }, "Admins create and change credentials; you may use those allowed to you."));
  }
  main.append(list);
  await reload();
  return () => editor.replaceChildren();
}

async function load(list, editor) {
  let credentials;
  try {
    credentials = await all("credentials", "credentials");
  } catch (error) {
    list.replaceChildren(problem(error));
    return;
  }
  const reload = () => load(list, editor);
  const limit = (v) => (v === null || v === undefined ? "any" : v.length ? v.join(", ") : "none");
  list.replaceChildren(
    table(
      "credentials",
      ["name", "user", "auth", "port", "password", "private key", "passphrase", "roles", "users", "clusters", "updated", ""],
      credentials.map((c) => {
        const slot = h("div", { class: "row-error" });
        const actions = can("admin")
          ? h(
              "div",
              { class: "actions" },
              h("button", { type: "button", class: "credential-edit", onclick: () => edit(editor, c, reload) }, "Edit"),
              confirmButton("Delete", { class: "danger credential-delete" }, (button) =>
                act(button, slot, async () => {
                  await request("DELETE", `credentials/${c.id}`);
                  editor.replaceChildren();
                  await reload();
                }),
              ),
            )
          : null;
        return h(
          "tr",
          { dataset: { credential: c.name } },
          h("td", { title: c.description || "" }, c.name),
          h("td", {}, c.username),
          h("td", {}, c.auth_type),
          h("td", { class: "num" }, c.port),
          h("td", { class: "has-password" }, yesNo(c.has_password)),
          h("td", { class: "has-private-key" }, yesNo(c.has_private_key)),
          h("td", {}, yesNo(c.has_passphrase)),
          h("td", {}, c.allowed_roles === null && c.allowed_users === null ? "operators and admins" : limit(c.allowed_roles)),
          h("td", {}, limit(c.allowed_users)),
          h("td", {}, limit(c.allowed_clusters)),
          h("td", {}, when(c.updated_at)),
          h("td", {}, actions, slot),
        );
      }),
      "No credentials yet.",
    ),
  );
}

// The create (c null) or edit form. Only non-secret fields come from the server.
function edit(editor, c, reload) {
  const text = (name, value, extra = {}) => h("input", { name, id: `cred-${name}`, value: value ?? "", autocomplete: "off", ...extra });
  const secret = (name) =>
    h("input", {
      name,
      id: `cred-${name}`,
      type: "password",
      autocomplete: "new-password",
      placeholder: c && c[`has_${name}`] ? "stored — type to replace" : "",
    });
  const inputs = {
    name: text("name", c && c.name),
    description: text("description", c && c.description),
    username: text("username", c && c.username),
    auth_type: h(
      "select",
      { name: "auth_type", id: "cred-auth_type" },
      ["password", "private_key"].map((t) => h("option", { value: t, selected: c && c.auth_type === t }, t)),
    ),
    port: text("port", c ? String(c.port) : "22", { inputmode: "numeric", size: "6" }),
    password: secret("password"),
    private_key: h("textarea", {
      name: "private_key",
      id: "cred-private_key",
      rows: "6",
      cols: "64",
      spellcheck: "false",
      autocomplete: "off",
      placeholder: c && c.has_private_key ? "stored — paste to replace" : "-----BEGIN OPENSSH PRIVATE KEY-----",
    }),
    passphrase: secret("passphrase"),
    allowed_clusters: text("allowed_clusters", ((c && c.allowed_clusters) || []).join(", ")),
    allowed_users: text("allowed_users", ((c && c.allowed_users) || []).join(", ")),
  };
  const limited = c ? c.allowed_roles !== null || c.allowed_users !== null : false;
  const limit = h("input", { type: "checkbox", id: "cred-limit", checked: limited });
  const roles = ["operator", "admin"].map((r) =>
    h("input", { type: "checkbox", name: "allowed_roles", value: r, class: "cred-role", checked: c && (c.allowed_roles || []).includes(r) }),
  );
  // "Remove the stored …": an edit can drop a secret (sent as null) instead of keeping it.
  const removers = {};
  for (const s of SECRETS) {
    if (c && c[`has_${s}`]) removers[s] = h("input", { type: "checkbox", id: `cred-remove-${s}` });
  }
  const secretField = (label, s) =>
    field(label, inputs[s], removers[s] ? h("label", { class: "inline" }, removers[s], " remove the stored one") : "write-only: never shown again");
  const button = h("button", { type: "submit", id: "cred-submit" }, c ? "Save changes" : "Create credential");
  const cancel = h("button", { type: "button", class: "linkish", onclick: () => editor.replaceChildren() }, "Cancel");
  const form = h(
    "form",
    { class: "card", id: "credential-form", autocomplete: "off" },
    h("h2", {}, c ? `Edit ${c.name}` : "New credential"),
    h("div", { class: "row" }, field("Name", inputs.name), field("SSH user", inputs.username), field("Port", inputs.port), field("Kind", inputs.auth_type)),
    field("Description", inputs.description),
    h("div", { class: "row" }, secretField("Password", "password"), secretField("Passphrase of the key", "passphrase")),
    secretField("Private key", "private_key"),
    field("Clusters it may be used on", inputs.allowed_clusters, "comma-separated; empty: any"),
    h(
      "fieldset",
      {},
      h("legend", {}, h("label", {}, limit, " Limit who may use it (admins always may)")),
      h("div", { class: "row" }, roles.map((r) => h("label", { class: "inline" }, r, ` ${r.value}s`))),
      field("Users", inputs.allowed_users, "comma-separated user names"),
    ),
    h("div", { class: "form-error" }),
    h("div", { class: "actions" }, button, cancel),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    const body = {};
    for (const key of ["name", "description", "username", "auth_type"]) body[key] = inputs[key].value;
    const port = inputs.port.value.trim();
    body.port = /^\d+$/.test(port) ? Number(port) : port;
    for (const s of SECRETS) {
      if (inputs[s].value) body[s] = inputs[s].value;
      else if (removers[s] && removers[s].checked) body[s] = null;
      // The secret leaves the page with this request, whatever its answer.
      inputs[s].value = "";
    }
    const clusters = names(inputs.allowed_clusters.value);
    if (clusters || c) body.allowed_clusters = clusters;
    if (limit.checked) {
      body.allowed_roles = roles.filter((r) => r.checked).map((r) => r.value);
      body.allowed_users = names(inputs.allowed_users.value) || [];
    } else if (c) {
      body.allowed_roles = null;
      body.allowed_users = null;
    }
    // An edit sends what changed (and any secret typed or removed), so the audit says so.
    if (c) {
      for (const key of Object.keys(body)) {
        if (!SECRETS.includes(key) && JSON.stringify(body[key]) === JSON.stringify(c[key] ?? null)) delete body[key];
      }
    }
    const label = body.name || (c && c.name);
    try {
      if (c) await request("PUT", `credentials/${c.id}`, { body });
      else await request("POST", "credentials", { body });
      editor.replaceChildren();
      await reload();
      editor.replaceChildren(h("p", { class: "note", id: "credential-saved", role: "status" }, `Credential ${label} saved.`));
    } catch (error) {
      showError(form, error, { 409: "name" });
    } finally {
      button.disabled = false;
    }
  });
  editor.replaceChildren(form);
  inputs.name.focus();
}
