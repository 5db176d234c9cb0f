// A plain-text editor for content bodies: a textarea with a line-number gutter, a band behind
// each line the server refused and the problems listed beside it. No markup from the text ever
// reaches the page: the text stays the textarea's value, the problems are text nodes.

import { h } from "./dom.js";

// The editor of `value`. `id` names its parts for tests (`${id}-text`, `${id}-problems`).
export function editor({ id, value = "", readOnly = false, label = "body", placeholder = "" }) {
  const numbers = h("div", { class: "ed-lines" });
  const bands = h("div", { class: "ed-bands" });
  const text = h("textarea", {
    id: `${id}-text`,
    class: "ed-text",
    wrap: "off",
    spellcheck: "false",
    autocapitalize: "off",
    autocomplete: "off",
    "aria-label": label,
    placeholder,
    readonly: readOnly || null,
  });
  text.value = value;
  const problems = h("ul", { id: `${id}-problems`, class: "ed-problems", "aria-live": "polite" });
  const el = h(
    "div",
    { id, class: `editor${readOnly ? " readonly" : ""}` },
    h("div", { class: "ed-gutter", "aria-hidden": "true" }, numbers),
    h("div", { class: "ed-body" }, h("div", { class: "ed-back", "aria-hidden": "true" }, bands), text),
    problems,
  );
  let count = 0;
  let marked = [];

  const lineCount = () => text.value.split("\n").length;
  const lineHeight = () => parseFloat(getComputedStyle(text).lineHeight) || 18;

  function drawNumbers() {
    const wanted = lineCount();
    if (wanted === count) return;
    count = wanted;
    const frag = document.createDocumentFragment();
    for (let n = 1; n <= count; n += 1) frag.append(h("div", { class: "ln", dataset: { line: n } }, String(n)));
    numbers.replaceChildren(frag);
    for (const mark of marked) paintNumber(mark);
    text.rows = Math.max(readOnly ? 3 : 12, Math.min(count + 1, 32));
  }

  function follow() {
    numbers.style.transform = `translateY(${-text.scrollTop}px)`;
    bands.style.transform = `translateY(${-text.scrollTop}px)`;
  }

  function paintNumber(mark) {
    const cell = numbers.children[mark.line - 1];
    if (!cell) return;
    cell.classList.add("err");
    cell.title = cell.title ? `${cell.title}\n${mark.message}` : mark.message;
  }

  // Marks each problem {line, column, message} (line null: listed only) and puts the caret on
  // the first one that has a line.
  function mark(list) {
    clearMarks();
    marked = list.filter((p) => Number.isInteger(p.line) && p.line >= 1);
    const height = lineHeight();
    for (const problem of marked) {
      paintNumber(problem);
      const band = h("div", { class: "ed-band", dataset: { line: problem.line } });
      band.style.top = `${(problem.line - 1) * height}px`;
      band.style.height = `${height}px`;
      bands.append(band);
    }
    problems.replaceChildren(
      ...list.map((p) =>
        h(
          "li",
          { class: "ed-problem", dataset: { line: p.line || "" } },
          p.line
            ? h("button", { type: "button", class: "linkish", onclick: () => goTo(p.line, p.column) }, `line ${p.line}${p.column ? `:${p.column}` : ""}`)
            : h("span", { class: "muted" }, p.field || "—"),
          " ",
          h("span", { class: "ed-message" }, p.message || ""),
        ),
      ),
    );
    el.classList.toggle("has-problems", list.length > 0);
    if (marked.length) goTo(marked[0].line, marked[0].column);
  }

  function clearMarks() {
    marked = [];
    bands.replaceChildren();
    problems.replaceChildren();
    el.classList.remove("has-problems");
    for (const cell of numbers.querySelectorAll(".ln.err")) {
      cell.classList.remove("err");
      cell.removeAttribute("title");
    }
  }

  // The caret at `line` (and `column`), the line scrolled into the upper third of the view.
  function goTo(line, column) {
    const all = text.value.split("\n");
    const index = Math.min(Math.max(line, 1), all.length) - 1;
    let start = 0;
    for (let i = 0; i < index; i += 1) start += all[i].length + 1;
    const at = start + Math.min(Math.max((column || 1) - 1, 0), all[index].length);
    el.scrollIntoView({ block: "nearest" });
    text.focus({ preventScroll: true });
    text.setSelectionRange(at, at);
    text.scrollTop = Math.max(0, index * lineHeight() - text.clientHeight / 3);
    follow();
  }

  text.addEventListener("input", drawNumbers);
  text.addEventListener("scroll", follow);
  drawNumbers();

  return {
    el,
    text,
    get value() {
      return text.value;
    },
    set value(next) {
      text.value = next;
      drawNumbers();
    },
    mark,
    clearMarks,
    goTo,
  };
}
