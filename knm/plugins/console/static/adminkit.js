// What the admin pages share: labelled fields whose server error shows beside them, buttons
// that ask a second click before what cannot be undone, tables and pagers.

import { h, problem } from "./dom.js";

// A labelled input with a slot for its error; `name` is the body field the server names.
export function field(label, input, hint) {
  const name = input.getAttribute("name");
  return h(
    "label",
    { class: "field", dataset: { field: name } },
    h("span", {}, label),
    input,
    hint ? h("small", { class: "muted" }, hint) : null,
    errorSlot(name),
  );
}

export function errorSlot(name) {
  return h("div", { class: "field-error", dataset: { for: name } });
}

export function clearErrors(form) {
  for (const slot of form.querySelectorAll(".field-error, .form-error")) slot.replaceChildren();
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

// The server's error at the field it names: a `details` entry's field, else the field its
// `error` starts with (`password must be…`, `target.url: …`), else the one `byStatus` gives
// for its status (a 409 on a name); the form's own slot when no field fits.
export function showError(form, error, byStatus = {}) {
  clearErrors(form);
  const slots = [...form.querySelectorAll(".field-error")];
  const names = slots.map((s) => s.dataset.for).sort((a, b) => b.length - a.length);
  const text = String((error && error.detail) || (error && error.message) || "");
  let name = ((error && error.details) || []).map((d) => d.field).find((f) => names.includes(f));
  if (!name) name = names.find((n) => text.startsWith(n) && !/\w/.test(text.charAt(n.length)));
  if (!name && error && error.status) name = byStatus[error.status];
  const slot = slots.find((s) => s.dataset.for === name) || form.querySelector(".form-error");
  slot.append(problem(error));
  const input = name ? form.querySelector(`[name="${CSS.escape(name)}"]`) : null;
  if (input) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
}

// Runs `work` with `button` disabled; a failure is shown in `slot`.
export async function act(button, slot, work) {
  button.disabled = true;
  slot.replaceChildren();
  try {
    await work();
  } catch (error) {
    slot.append(problem(error));
  } finally {
    button.disabled = false;
  }
}

// A button for what cannot be undone: the first click arms it, a second within 5 s acts.
export function confirmButton(label, props, work) {
  const button = h("button", { type: "button", class: "danger", ...props }, label);
  let timer = 0;
  button.addEventListener("click", async () => {
    if (!button.classList.contains("armed")) {
      button.classList.add("armed");
      button.textContent = `${label}? Click again`;
      timer = setTimeout(() => disarm(), 5000);
      return;
    }
    clearTimeout(timer);
    disarm();
    await work(button);
  });
  function disarm() {
    button.classList.remove("armed");
    button.textContent = label;
  }
  return button;
}

export function table(id, heads, rows, empty) {
  if (!rows.length) return h("p", { class: "muted", id: `${id}-empty` }, empty);
  return h(
    "table",
    { id },
    h("thead", {}, h("tr", {}, heads.map((t) => h("th", {}, t)))),
    h("tbody", {}, rows),
  );
}

// "← newer  page 2 of 5 (93 entries)  older →", each link from `go(page)`.
export function pager(id, page, size, total, noun, go) {
  const pages = Math.max(1, Math.ceil(total / size));
  // go(n) is a link's href, or what a button does.
  const link = (n, text, which) => {
    const to = go(n);
    const id2 = `${id}-${which}`;
    return typeof to === "string"
      ? h("a", { href: to, id: id2 }, text)
      : h("button", { type: "button", class: "linkish", id: id2, onclick: to }, text);
  };
  return h(
    "nav",
    { class: "pager", id },
    page > 1 ? link(page - 1, "← newer", "prev") : null,
    h("span", { id: `${id}-info` }, ` page ${page} of ${pages} (${total} ${noun}) `),
    page < pages ? link(page + 1, "older →", "next") : null,
  );
}

// "a, b ,c" → ["a", "b", "c"]; empty → null (no limit).
export function names(text) {
  const list = String(text || "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  return list.length ? list : null;
}

export function yesNo(value) {
  return value ? "yes" : "—";
}
