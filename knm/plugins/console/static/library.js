// The library: playbooks, scripts and workflows. List and filter them, read one with its
// versions and the diff between any two, create, edit (the server's validation errors at their
// line), clone, roll back and delete, all through the content routes a client uses, as
// `knm playbook|script|workflow` does. Builtins are read-only (clone them to change a copy);
// a viewer sees every page without a button.

import { all, can, request } from "./api.js";
import { unifiedDiff } from "./diff.js";
import { append, clear, h, problem, route, when } from "./dom.js";
import { editor } from "./editor.js";
import { loadLocated, placeOf, toYaml, YamlProblem } from "./yaml-text.js";

export const KINDS = {
  playbooks: { noun: "playbook", label: "Playbook", route: "automation/ansible/playbooks", body: "content", syntax: "YAML" },
  scripts: { noun: "script", label: "Script", route: "automation/scripts", body: "content", syntax: "shell" },
  workflows: { noun: "workflow", label: "Workflow", route: "automation/workflows", body: "definition", syntax: "YAML" },
};
const STARTERS = {
  playbooks: "- name: Describe the play\n  hosts: all\n  gather_facts: false\n  tasks:\n    - name: Show uptime\n      ansible.builtin.command: uptime\n",
  scripts: "#!/bin/bash\nset -euo pipefail\n\n",
  workflows: "steps:\n  - id: step1\n    name: Show uptime\n    type: ssh\n    command: uptime\n",
};

export async function libraryView(page, rest, params) {
  const [plural, id, action] = rest;
  if (!plural) return listView(page, params);
  const kind = KINDS[plural];
  if (!kind || rest.length > 3 || (action && action !== "edit") || (id !== "new" && id && !/^\d+$/.test(id))) {
    page.append(h("h1", {}, "Not found"), h("p", {}, "No such page in the library."));
    return undefined;
  }
  if (id === "new") return rest.length === 2 && can("operator") ? editView(page, plural, null) : denied(page);
  if (!id) return listView(page, new URLSearchParams({ kind: plural }));
  if (action === "edit") return can("operator") ? editView(page, plural, id) : denied(page);
  return itemView(page, plural, id, params);
}

function denied(page) {
  page.append(h("h1", {}, "Not found"), h("p", {}, "No such page in the console."));
}

// A body as the editor and the diff show it: a playbook's or script's text, a workflow's
// definition (a JSON object on the wire) as YAML.
function bodyText(kind, body) {
  if (body === null || body === undefined) return "";
  return typeof body === "string" ? body : toYaml(body);
}

function syntaxOf(plural, item) {
  if (plural === "scripts") return item && item.language === "python" ? "Python" : "shell";
  return KINDS[plural].syntax;
}

function badges(item) {
  return [
    item.is_builtin ? h("span", { class: "badge lib-builtin", title: "shipped with knm: read-only" }, "builtin") : null,
    item.is_active === false ? h("span", { class: "badge lib-inactive" }, "inactive") : null,
  ];
}

// --- the list -------------------------------------------------------------------------------

async function listView(page, params) {
  const plural = KINDS[params.get("kind")] ? params.get("kind") : "playbooks";
  const kind = KINDS[plural];
  const wanted = (params.get("q") || "").toLowerCase();
  const filter = h("input", { id: "library-filter", type: "search", placeholder: "Filter by name", value: params.get("q") || "", "aria-label": "filter by name" });
  const origin = h(
    "select",
    { id: "library-origin", "aria-label": "builtin or user-made" },
    [["", "all"], ["builtin", "builtin"], ["mine", "user-made"]].map(([value, text]) =>
      h("option", { value, selected: value === (params.get("origin") || "") }, text),
    ),
  );
  const tabs = h(
    "nav",
    { class: "tabs", id: "library-tabs" },
    Object.entries(KINDS).map(([name, k]) =>
      h("a", { href: `#/library?kind=${name}`, id: `tab-${name}`, class: name === plural ? "active" : null, "aria-current": name === plural ? "page" : null }, `${k.label}s`),
    ),
  );
  const body = h("section", { id: "library-list" }, h("p", { class: "muted" }, "Loading…"));
  append(page, [
    h("h1", {}, "Library"),
    tabs,
    h(
      "div",
      { class: "bar lib-tools" },
      filter,
      origin,
      can("operator") ? h("a", { href: route("library", plural, "new"), id: "library-new", class: "button" }, `New ${kind.noun}`) : null,
    ),
    body,
  ]);

  let items;
  try {
    items = await all(kind.route, plural);
  } catch (error) {
    body.replaceChildren(problem(error));
    return;
  }
  const rows = items.map((item) =>
    h(
      "tr",
      { dataset: { id: item.id, name: item.name, builtin: item.is_builtin ? "true" : "false" } },
      h("td", { class: "num" }, String(item.id)),
      h("td", {}, h("a", { href: route("library", plural, item.id), class: "lib-name" }, item.name), " ", badges(item)),
      h("td", { class: "lib-desc" }, item.description || ""),
      h("td", {}, item.category || ""),
      plural === "scripts" ? h("td", {}, item.language || "") : null,
      plural === "workflows" ? h("td", { class: "num" }, String(item.step_count ?? "")) : null,
      h("td", { class: "num" }, String(item.version)),
      h("td", {}, when(item.updated_at)),
    ),
  );
  const none = h("p", { class: "muted", id: "library-none", hidden: true }, `No ${kind.noun}s match.`);
  body.replaceChildren(
    h(
      "table",
      { id: "library-table" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["id", "name", "description", "category", plural === "scripts" ? "language" : null, plural === "workflows" ? "steps" : null, "version", "updated"]
            .filter(Boolean)
            .map((t) => h("th", {}, t)),
        ),
      ),
      h("tbody", {}, rows),
    ),
    none,
  );
  const apply = () => {
    const q = filter.value.trim().toLowerCase();
    let shown = 0;
    items.forEach((item, index) => {
      const visible =
        item.name.toLowerCase().includes(q) &&
        (!origin.value || (origin.value === "builtin") === Boolean(item.is_builtin));
      rows[index].hidden = !visible;
      if (visible) shown += 1;
    });
    none.hidden = shown > 0;
    // The filter is kept in the URL without a reload, so the list is linkable as filtered.
    const next = new URLSearchParams({ kind: plural });
    if (filter.value.trim()) next.set("q", filter.value.trim());
    if (origin.value) next.set("origin", origin.value);
    history.replaceState(null, "", `#/library?${next}`);
  };
  filter.addEventListener("input", apply);
  origin.addEventListener("change", apply);
  if (wanted || origin.value) apply();
}

// --- one item: its body, facts, versions and diff -------------------------------------------

async function itemView(page, plural, id, params) {
  const kind = KINDS[plural];
  const item = await request("GET", `${kind.route}/${id}`);
  const writable = can("operator") && !item.is_builtin;
  const notice = params.get("saved")
    ? h("p", { class: "notice", id: "library-notice", role: "status" }, params.get("saved") === "created" ? `${kind.label} created.` : `Saved as version ${params.get("saved")}.`)
    : null;
  const confirmBox = h("div", { id: "item-confirm" });
  const outcome = h("div", { id: "item-problem" });

  const actions = h("div", { class: "actions", id: "item-actions" });
  if (writable) actions.append(h("a", { href: route("library", plural, item.id, "edit"), id: "item-edit", class: "button" }, "Edit"));
  if (can("operator")) actions.append(h("button", { type: "button", id: "item-clone", onclick: () => askClone() }, "Clone"));
  if (writable) actions.append(h("button", { type: "button", id: "item-delete", class: "danger", onclick: () => askDelete() }, "Delete"));

  const facts = h("dl", { class: "facts", id: "item-facts" });
  const fact = (name, value) => value !== null && value !== undefined && value !== "" && facts.append(h("dt", {}, name), h("dd", { dataset: { fact: name } }, value));
  fact("description", item.description);
  fact("category", item.category);
  fact("tags", (item.tags || []).join(", "));
  if (plural === "scripts") fact("language", item.language);
  if (plural === "workflows" && item.definition) {
    fact("steps", String((item.definition.steps || []).length));
    const strategy = item.definition.strategy;
    if (strategy) fact("strategy", Object.entries(strategy).filter(([, v]) => v !== null && v !== undefined).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", "));
  }
  fact("version", String(item.version));
  fact("created", `${when(item.created_at)}${item.created_by ? ` by ${item.created_by}` : ""}`);
  fact("updated", `${when(item.updated_at)}${item.updated_by ? ` by ${item.updated_by}` : ""}`);

  const declared = plural === "scripts" ? item.parameters : plural === "workflows" && item.definition ? item.definition.parameters : null;
  const parameters =
    declared && declared.length
      ? h(
          "table",
          { id: "item-parameters" },
          h("thead", {}, h("tr", {}, ["parameter", "description", "default", "required", "secret", "pattern"].map((t) => h("th", {}, t)))),
          h(
            "tbody",
            {},
            declared.map((p) =>
              h(
                "tr",
                { dataset: { parameter: p.name } },
                h("td", {}, h("code", {}, p.name)),
                h("td", {}, p.description || ""),
                h("td", {}, p.secret ? (p.default ? "••••" : "") : p.default ?? ""),
                h("td", {}, p.required ? "yes" : ""),
                h("td", {}, p.secret ? "yes" : ""),
                h("td", {}, p.pattern ? h("code", {}, p.pattern) : ""),
              ),
            ),
          ),
        )
      : null;

  const shown = editor({ id: "item-body", value: bodyText(kind, item[kind.body]), readOnly: true, label: `${kind.noun} body` });
  const versions = h("section", { id: "item-versions" }, h("h2", {}, "Versions"), h("p", { class: "muted" }, "Loading…"));

  append(page, [
    h("p", { class: "crumbs" }, h("a", { href: `#/library?kind=${plural}` }, `${kind.label}s`), " / "),
    h("h1", { id: "item-title" }, `${kind.label}: `, h("span", { id: "item-name" }, item.name), " ", badges(item)),
    notice,
    item.is_builtin ? h("p", { class: "muted", id: "item-readonly" }, `Builtin ${kind.noun}s are read-only${can("operator") ? ": clone it to change a copy." : "."}`) : null,
    actions,
    confirmBox,
    outcome,
    facts,
    parameters ? [h("h2", {}, "Parameters"), parameters] : null,
    h("h2", {}, `Body `, h("span", { class: "muted" }, `(${syntaxOf(plural, item)})`)),
    shown.el,
    versions,
  ]);

  function askClone() {
    const name = h("input", { id: "clone-name", value: `${item.name} (copy)`, size: "40", "aria-label": "name of the copy" });
    const go = async () => {
      outcome.replaceChildren();
      try {
        const copy = await request("POST", `${kind.route}/${item.id}/clone`, { body: { name: name.value } });
        window.location.hash = route("library", plural, copy.id, "edit");
      } catch (error) {
        outcome.replaceChildren(problem(error));
      }
    };
    confirmBox.replaceChildren(
      h(
        "form",
        { class: "confirm bar", id: "clone-form", onsubmit: (e) => (e.preventDefault(), go()) },
        h("label", {}, "Clone as ", name),
        h("button", { type: "submit", id: "clone-confirm" }, "Clone"),
        h("button", { type: "button", class: "linkish", onclick: () => confirmBox.replaceChildren() }, "Cancel"),
      ),
    );
    name.focus();
  }

  function askDelete() {
    const go = async () => {
      outcome.replaceChildren();
      try {
        await request("DELETE", `${kind.route}/${item.id}`);
        window.location.hash = `#/library?kind=${plural}`;
      } catch (error) {
        outcome.replaceChildren(problem(error));
      }
    };
    confirmBox.replaceChildren(
      h(
        "div",
        { class: "confirm bar", role: "alertdialog" },
        h("span", {}, `Delete ${kind.noun} "${item.name}" and all its versions? This cannot be undone.`),
        h("button", { type: "button", class: "danger", id: "delete-confirm", onclick: go }, "Delete"),
        h("button", { type: "button", class: "linkish", id: "delete-cancel", onclick: () => confirmBox.replaceChildren() }, "Cancel"),
      ),
    );
  }

  await versionsOf(versions, plural, item, outcome, confirmBox);
}

async function versionsOf(box, plural, item, outcome, confirmBox) {
  const kind = KINDS[plural];
  let list;
  try {
    list = await all(`${kind.route}/${item.id}/versions`, "versions", {}, 1000);
  } catch (error) {
    box.replaceChildren(h("h2", {}, "Versions"), problem(error));
    return;
  }
  const bodies = new Map([[item.version, { text: bodyText(kind, item[kind.body]), detail: null }]]);
  const fetchVersion = async (version) => {
    if (!bodies.has(version) || !bodies.get(version).detail) {
      const detail = await request("GET", `${kind.route}/${item.id}/versions/${version}`);
      bodies.set(version, { text: bodyText(kind, detail[kind.body]), detail });
    }
    return bodies.get(version);
  };
  const canRoll = can("operator") && !item.is_builtin;
  const table = h(
    "table",
    { id: "versions" },
    h("thead", {}, h("tr", {}, ["version", "saved", "by", canRoll ? "" : null].filter((t) => t !== null).map((t) => h("th", {}, t)))),
    h(
      "tbody",
      {},
      list.map((v) =>
        h(
          "tr",
          { dataset: { version: v.version } },
          h("td", { class: "num" }, String(v.version), v.version === item.version ? h("span", { class: "muted" }, " (current)") : null),
          h("td", {}, when(v.created_at)),
          h("td", {}, v.created_by || ""),
          canRoll
            ? h("td", {}, v.version === item.version ? "" : h("button", { type: "button", class: "rollback", dataset: { version: v.version }, onclick: () => askRollback(v.version) }, "Roll back"))
            : null,
        ),
      ),
    ),
  );
  const numbers = list.map((v) => v.version);
  const pick = (id, chosen) => h("select", { id, "aria-label": id }, numbers.map((n) => h("option", { value: String(n), selected: n === chosen }, `version ${n}${n === item.version ? " (current)" : ""}`)));
  const from = pick("diff-from", numbers.length > 1 ? numbers[1] : numbers[0]);
  const to = pick("diff-to", numbers[0]);
  const out = h("div", { id: "diff-out" });
  const show = async () => {
    out.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    try {
      const [a, b] = [Number(from.value), Number(to.value)];
      const [older, newer] = await Promise.all([fetchVersion(a), fetchVersion(b)]);
      out.replaceChildren(unifiedDiff(older.text, newer.text, `${kind.noun} ${item.id} version ${a}`, `${kind.noun} ${item.id} version ${b}`));
      out.scrollIntoView({ block: "nearest" });
    } catch (error) {
      out.replaceChildren(problem(error));
    }
  };
  append(clear(box), [
    h("h2", {}, "Versions"),
    table,
    list.length < (item.version || 0) ? h("p", { class: "muted" }, `Showing ${list.length} versions.`) : null,
    h("h3", {}, "Compare"),
    h("div", { class: "bar", id: "diff-pick" }, h("label", {}, "from ", from), h("label", {}, "to ", to), h("button", { type: "button", id: "diff-show", onclick: show }, "Show diff")),
    out,
  ]);

  function askRollback(version) {
    const go = async () => {
      outcome.replaceChildren();
      try {
        const { detail } = await fetchVersion(version);
        const fields = { [kind.body]: detail[kind.body], version: item.version };
        if (plural === "scripts") {
          if (detail.language) fields.language = detail.language;
          if (detail.parameters) fields.parameters = detail.parameters;
        }
        const saved = await request("PUT", `${kind.route}/${item.id}`, { body: fields });
        window.location.hash = `${route("library", plural, item.id)}?saved=${saved.version}`;
      } catch (error) {
        outcome.replaceChildren(conflictOr(error, kind, item));
      }
    };
    confirmBox.replaceChildren(
      h(
        "div",
        { class: "confirm bar", role: "alertdialog" },
        h("span", {}, `Make version ${version}'s body the current one (saved as version ${item.version + 1})?`),
        h("button", { type: "button", id: "rollback-confirm", onclick: go }, "Roll back"),
        h("button", { type: "button", class: "linkish", onclick: () => confirmBox.replaceChildren() }, "Cancel"),
      ),
    );
  }
}

// A 409 version mismatch said plainly; any other error as the API gave it.
function conflictOr(error, kind, item) {
  if (error && error.status === 409 && /version mismatch/i.test(`${error.message} ${error.detail}`)) {
    return h(
      "div",
      { class: "problem conflict", id: "conflict", role: "alert" },
      h("strong", {}, "Not saved: someone else changed this "),
      h("strong", {}, kind.noun),
      ` since you opened version ${item.version} (${error.detail || "version mismatch"}). Nothing was overwritten. `,
      h("a", { href: route("library", Object.keys(KINDS).find((p) => KINDS[p] === kind), item.id), id: "conflict-latest" }, "See the latest version"),
      ".",
    );
  }
  return problem(error);
}

// --- create and edit ------------------------------------------------------------------------

async function editView(page, plural, id) {
  const kind = KINDS[plural];
  const item = id ? await request("GET", `${kind.route}/${id}`) : null;
  if (item && item.is_builtin) {
    page.append(
      h("h1", {}, `${kind.label}: ${item.name}`),
      h("p", { id: "item-readonly" }, `Builtin ${kind.noun}s are read-only: `, h("a", { href: route("library", plural, item.id) }, "open it"), " and clone it to change a copy."),
    );
    return;
  }
  const input = (name, value, extra = {}) => h("input", { id: `edit-${name}`, name, value: value ?? "", ...extra });
  const fields = {
    name: input("name", item ? item.name : "", { required: true, size: "40" }),
    description: input("description", item ? item.description : "", { size: "60" }),
    category: input("category", item ? item.category : "general", { size: "20" }),
    tags: input("tags", item ? (item.tags || []).join(", ") : "", { size: "30", placeholder: "comma, separated" }),
  };
  let language = null;
  let params = null;
  if (plural === "scripts") {
    language = h("select", { id: "edit-language", name: "language" }, ["shell", "python"].map((l) => h("option", { value: l, selected: (item ? item.language : "shell") === l }, l)));
    params = parameterEditor(item ? item.parameters || [] : []);
  }
  const body = editor({
    id: "edit-body",
    value: item ? bodyText(kind, item[kind.body]) : STARTERS[plural],
    label: `${kind.noun} body`,
  });
  const outcome = h("div", { id: "edit-problem" });
  const save = h("button", { type: "submit", id: "edit-save" }, item ? "Save" : `Create ${kind.noun}`);
  const form = h(
    "form",
    { id: "edit-form", class: "lib-form" },
    h(
      "div",
      { class: "lib-fields" },
      Object.entries(fields).map(([name, el]) => h("label", {}, name, el)),
      language ? h("label", {}, "language", language) : null,
    ),
    params ? params.el : null,
    h("h2", {}, "Body ", h("span", { class: "muted", id: "edit-syntax" }, `(${syntaxOf(plural, item || { language: "shell" })})`)),
    body.el,
    outcome,
    h("div", { class: "actions" }, save, h("a", { href: item ? route("library", plural, item.id) : `#/library?kind=${plural}`, id: "edit-cancel" }, "Cancel")),
  );
  if (language) language.addEventListener("change", () => (document.getElementById("edit-syntax").textContent = `(${language.value === "python" ? "Python" : "shell"})`));
  append(page, [
    h("p", { class: "crumbs" }, h("a", { href: `#/library?kind=${plural}` }, `${kind.label}s`), " / ", item ? h("a", { href: route("library", plural, item.id) }, item.name) : null),
    h("h1", {}, item ? `Edit ${kind.noun}: ` : `New ${kind.noun}`, item ? h("span", { id: "item-name" }, item.name) : null, item ? h("span", { class: "muted" }, ` (from version ${item.version})`) : null),
    form,
  ]);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    outcome.replaceChildren();
    body.clearMarks();
    const data = {
      name: fields.name.value.trim(),
      description: fields.description.value,
      category: fields.category.value.trim() || "general",
      tags: fields.tags.value.split(",").map((t) => t.trim()).filter(Boolean),
    };
    let places = null;
    if (plural === "workflows") {
      // YAML (or JSON, which is YAML) read here: a syntax error is shown at its line and
      // nothing is sent; the definition goes to the server as the JSON object the API takes.
      try {
        const parsed = loadLocated(body.value);
        data.definition = parsed.value;
        places = parsed.places;
      } catch (error) {
        if (!(error instanceof YamlProblem)) throw error;
        const at = error.line ? ` (line ${error.line}${error.column ? `, column ${error.column}` : ""})` : "";
        const what = error.syntax ? "not valid YAML" : "not a definition JSON can carry";
        const where = { field: "definition", line: error.line, column: error.column, message: `${what}: ${error.message}` };
        outcome.replaceChildren(h("div", { class: "problem", role: "alert", id: "edit-syntax-problem" }, `Not saved: the definition is ${what}${at}: ${error.message}`));
        body.mark([where]);
        return;
      }
    } else {
      data.content = body.value;
    }
    if (language) {
      data.language = language.value;
      data.parameters = params.value();
    }
    save.disabled = true;
    try {
      if (item) {
        const saved = await request("PUT", `${kind.route}/${item.id}`, { body: { ...data, version: item.version } });
        window.location.hash = `${route("library", plural, saved.id)}?saved=${saved.version}`;
      } else {
        const made = await request("POST", kind.route, { body: data });
        window.location.hash = `${route("library", plural, made.id)}?saved=created`;
      }
    } catch (error) {
      const inBody = (d) => d.field === kind.body || String(d.field || "").startsWith(`${kind.body}.`) || String(d.field || "").startsWith(`${kind.body}[`);
      const located = (error.details || []).filter(inBody).map((d) => {
        if (d.line || !places) return d;
        const path = String(d.field).slice(kind.body.length).replace(/^\./, "");
        return { ...d, line: placeOf(places, path) };
      });
      if (located.length) {
        // The body's problems are beside their lines; the box says so and lists the others.
        const others = error.details.filter((d) => !inBody(d));
        const count = located.length === 1 ? "1 problem" : `${located.length} problems`;
        outcome.replaceChildren(
          h(
            "div",
            { class: "problem", role: "alert" },
            h("strong", {}, `${error.status} ${error.message}`),
            ` — not saved: ${count} in the body, marked at ${located.some((d) => d.line) ? "their lines" : "the side"}.`,
            others.length ? problem({ status: error.status, message: "", detail: "", details: others }).querySelector("ul") : null,
          ),
        );
        body.mark(located);
      } else {
        outcome.replaceChildren(conflictOr(error, kind, item || { version: 0 }));
        if (item && outcome.querySelector("#conflict")) {
          // What the other change did, against what this editor holds: the user decides.
          const mine = body.value;
          const compare = h("button", { type: "button", id: "conflict-diff", class: "linkish" }, "Compare their version with your text");
          compare.addEventListener("click", async () => {
            try {
              const theirs = await request("GET", `${kind.route}/${item.id}`);
              compare.replaceWith(unifiedDiff(bodyText(kind, theirs[kind.body]), mine, `their version ${theirs.version}`, "your text", "conflict-diff-out"));
            } catch (failure) {
              compare.replaceWith(problem(failure));
            }
          });
          outcome.append(compare);
        }
      }
    } finally {
      save.disabled = false;
    }
  });
}

// A script's declared parameters as rows of inputs: {el, value()}.
function parameterEditor(initial) {
  const rows = h("tbody", {});
  const addRow = (p = {}) => {
    const cell = (name, props) => h("td", {}, h("input", { class: `param-${name}`, "aria-label": name, ...props }));
    const row = h(
      "tr",
      { class: "param-row" },
      cell("name", { value: p.name || "", size: "14", placeholder: "NAME" }),
      cell("description", { value: p.description || "", size: "24" }),
      cell("default", { value: p.default ?? "", size: "12", type: p.secret ? "password" : "text", autocomplete: "off" }),
      cell("required", { type: "checkbox", checked: Boolean(p.required) }),
      cell("secret", { type: "checkbox", checked: Boolean(p.secret) }),
      cell("pattern", { value: p.pattern || "", size: "14" }),
      h("td", {}, h("button", { type: "button", class: "linkish param-remove", onclick: () => row.remove() }, "remove")),
    );
    const secret = row.querySelector(".param-secret");
    secret.addEventListener("change", () => (row.querySelector(".param-default").type = secret.checked ? "password" : "text"));
    rows.append(row);
  };
  initial.forEach(addRow);
  const el = h(
    "fieldset",
    { id: "edit-parameters" },
    h("legend", {}, "Parameters (reach the script as environment variables)"),
    h("table", {}, h("thead", {}, h("tr", {}, ["name", "description", "default", "required", "secret", "pattern", ""].map((t) => h("th", {}, t)))), rows),
    h("div", {}, h("button", { type: "button", id: "param-add", class: "linkish", onclick: () => addRow() }, "+ add parameter")),
  );
  const value = () =>
    [...rows.querySelectorAll(".param-row")]
      .map((row) => {
        const get = (name) => row.querySelector(`.param-${name}`);
        return {
          name: get("name").value.trim(),
          description: get("description").value,
          default: get("default").value === "" ? null : get("default").value,
          required: get("required").checked,
          secret: get("secret").checked,
          pattern: get("pattern").value === "" ? null : get("pattern").value,
        };
      })
      .filter((p) => p.name || p.description || p.default !== null || p.pattern !== null);
  return { el, value };
}
