// Building the page from data without ever parsing it as HTML: every text the server sends
// becomes a text node or a property, never markup: the console has no HTML parsing sink.

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "value" || key === "checked" || key === "selected") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

// A link inside the console: the target is built from encoded parts, never taken as given.
export function link(text, ...parts) {
  return h("a", { href: route(...parts) }, text);
}

export function route(...parts) {
  return "#/" + parts.map((part) => encodeURIComponent(String(part))).join("/");
}

// Local time as 2026-12-05 13:02:20: unambiguous and sortable, and made without Intl: the first
// toLocaleString (or localeCompare) of a page loads the locale data, 70-140 ms on a small
// machine, a long task in the middle of drawing the page.
export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())} ${clock(date)}`;
}

export function clock(date) {
  return `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}`;
}

function two(n) {
  return String(n).padStart(2, "0");
}

export function seconds(value) {
  if (value === null || value === undefined) return "";
  const s = Number(value);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

// An API error shown where it happened: the envelope's message and error, and each detail.
export function problem(error) {
  const box = h("div", { class: "problem", role: "alert" });
  if (error && error.status) {
    append(box, [h("strong", {}, `${error.status} ${error.message || ""}`), " ", error.detail || ""]);
    if (error.details && error.details.length) {
      box.append(
        h(
          "ul",
          {},
          error.details.map((d) =>
            h("li", {}, [d.field || "", d.line ? ` line ${d.line}` : "", ": ", d.message || ""]),
          ),
        ),
      );
    }
  } else {
    box.append(String(error && error.message ? error.message : error));
  }
  return box;
}
