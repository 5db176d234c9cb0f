// A script's or a workflow's declared parameters as a form: one field per parameter by its type
// (string, integer, boolean, command), required ones marked, defaults shown (an empty field
// takes the default: nothing is sent for it), secret ones as password fields whose default is
// never shown. Values go out as text, as both routes take them.

import { h } from "./dom.js";

export function parameterForm(parameters) {
  const fields = [];
  const box = h("div", { class: "params", id: "run-params" });
  if (!parameters || !parameters.length) {
    box.append(h("p", { class: "muted", id: "no-params" }, "No declared parameters."));
  }
  for (const param of parameters || []) {
    const id = `param-${param.name}`;
    const type = param.type || "string";
    const hint = param.default === null || param.default === undefined ? "" : param.secret ? "has a default (hidden)" : `default: ${param.default}`;
    let input;
    if (type === "boolean") {
      input = h(
        "select",
        { id, name: param.name },
        h("option", { value: "" }, hint ? `(${hint})` : param.required ? "(choose)" : "(not given)"),
        h("option", { value: "true" }, "true"),
        h("option", { value: "false" }, "false"),
      );
    } else if (type === "command") {
      input = h("textarea", { id, name: param.name, rows: "2", spellcheck: "false", placeholder: hint });
    } else if (param.secret) {
      input = h("input", { id, name: param.name, type: "password", autocomplete: "new-password", placeholder: hint, class: "secret" });
    } else if (type === "integer") {
      input = h("input", { id, name: param.name, type: "number", step: "1", placeholder: hint });
    } else {
      input = h("input", { id, name: param.name, type: "text", spellcheck: "false", placeholder: hint });
    }
    input.dataset.param = param.name;
    const slot = h("div", { class: "slot field-problem", id: `${id}-problem` });
    // A problem shown at a field goes once the field changes.
    input.addEventListener("input", () => slot.replaceChildren());
    const marks = [
      param.required ? h("span", { class: "req", title: "required" }, " *") : null,
      type !== "string" ? h("span", { class: "tag" }, type) : null,
      param.secret ? h("span", { class: "tag secret-tag" }, "secret") : null,
    ];
    box.append(
      h(
        "div",
        { class: "param", dataset: { param: param.name } },
        h("label", { for: id }, h("code", {}, param.name), marks),
        param.description ? h("span", { class: "muted small" }, param.description) : null,
        param.pattern ? h("span", { class: "muted small" }, "must match ", h("code", {}, param.pattern)) : null,
        input,
        slot,
      ),
    );
    fields.push({ param, input, slot, type });
  }

  return {
    el: box,
    // {values, problems}: problems name the parameter, and are shown at it.
    read() {
      const values = {};
      const problems = [];
      for (const { param, input, slot, type } of fields) {
        slot.replaceChildren();
        const raw = input.value;
        if (type === "integer" && input.validity && input.validity.badInput) {
          problems.push([param.name, "must be a whole number"]);
        } else if (raw === "") {
          if (param.required && (param.default === null || param.default === undefined)) problems.push([param.name, "is required"]);
        } else if (type === "integer" && !/^-?\d+$/.test(raw.trim())) {
          problems.push([param.name, "must be a whole number"]);
        } else {
          values[param.name] = type === "integer" ? raw.trim() : raw;
        }
      }
      for (const [name, message] of problems) {
        const field = fields.find((f) => f.param.name === name);
        field.slot.replaceChildren(h("div", { class: "problem" }, `${name} ${message}`));
      }
      return { values, problems };
    },
    // Shows each part of a server's refusal that names a parameter at that parameter.
    place(error) {
      const text = `${error.detail || ""}`;
      let placed = false;
      for (const part of text.split("; ")) {
        for (const { param, slot } of fields) {
          if (new RegExp(`(^|[\\s,:])${param.name.replace(/[^A-Za-z0-9_]/g, "")}($|[\\s,;])`).test(part)) {
            slot.replaceChildren(h("div", { class: "problem" }, part));
            placed = true;
          }
        }
      }
      return placed;
    },
    clearSecrets() {
      for (const { param, input } of fields) if (param.secret) input.value = "";
    },
  };
}
