// Searching a node's output: every match is highlighted by wrapping the text it covers in
// <mark> elements (text nodes split, never markup parsed), so ANSI color spans stay as they are
// and a match may run across them. Output still streaming in is searched as it arrives: only
// the new tail is scanned, and the matches found so far (and the one shown) stay put.

import { h } from "./dom.js";

// Marks beyond this many would make a one-letter query over a megabyte of output slow: the
// count then says "N+".
const MOST = 5000;

function escape(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export class OutputSearch {
  // targets: the <pre> elements searched, in the order their matches are counted.
  constructor(targets) {
    this.targets = targets.map((el) => ({ el, from: 0, matches: [] }));
    this.query = "";
    this.pattern = null;
    this.current = -1;
    this.total = 0;
    this.frame = 0;
    this.pending = new Set();
    this.input = h("input", {
      type: "search",
      id: "output-search",
      placeholder: "Search output",
      "aria-label": "search output",
      autocomplete: "off",
      spellcheck: "false",
    });
    this.count = h("span", { id: "search-count", class: "muted", "aria-live": "polite" });
    this.previous = h("button", { type: "button", id: "search-prev", title: "previous match (Shift+Enter)", onclick: () => this.step(-1) }, "↑");
    this.next = h("button", { type: "button", id: "search-next", title: "next match (Enter)", onclick: () => this.step(1) }, "↓");
    // Typing settles before the output is searched again.
    this.input.addEventListener("input", () => {
      clearTimeout(this.typing);
      this.typing = setTimeout(() => this.search(this.input.value), 120);
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        if (this.input.value !== this.query) {
          clearTimeout(this.typing);
          this.search(this.input.value);
        } else {
          this.step(event.shiftKey ? -1 : 1);
        }
      } else if (event.key === "Escape") {
        this.input.value = "";
        this.search("");
      }
    });
    this.element = h("div", { class: "output-search", role: "search" }, this.input, this.previous, this.next, this.count);
    this.drawCount();
  }

  get matches() {
    return this.targets.flatMap((t) => t.matches);
  }

  // A new query: the old marks go, the whole output is searched again.
  search(query) {
    for (const target of this.targets) {
      for (const mark of target.el.querySelectorAll("mark.hit")) mark.replaceWith(...mark.childNodes);
      target.el.normalize();
      target.matches = [];
      target.from = 0;
    }
    this.query = query;
    this.pattern = query ? new RegExp(escape(query), "giu") : null;
    this.current = -1;
    this.total = 0;
    for (const target of this.targets) this.scan(target);
    if (this.matches.length) this.show(0);
    this.drawCount();
  }

  // Output was appended to `el`: its new text is searched (once per frame at most).
  appended(el) {
    if (!this.pattern) return;
    const target = this.targets.find((t) => t.el === el);
    if (!target) return;
    this.pending.add(target);
    if (!this.frame) {
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        const before = this.matches.length;
        for (const t of this.pending) this.scan(t);
        this.pending.clear();
        if (this.current < 0 && this.matches.length) this.show(0);
        else if (this.matches.length !== before) this.markCurrent();
        this.drawCount();
      });
    }
  }

  close() {
    cancelAnimationFrame(this.frame);
    clearTimeout(this.typing);
  }

  // Finds the matches in target's text from `target.from` on and wraps each in marks.
  scan(target) {
    if (!this.pattern || this.total >= MOST) return;
    const pieces = [];
    let text = "";
    const walker = document.createTreeWalker(target.el, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      pieces.push({ node, start: text.length });
      text += node.data;
    }
    const found = [];
    this.pattern.lastIndex = target.from;
    for (let match = this.pattern.exec(text); match; match = this.pattern.exec(text)) {
      if (match[0].length === 0) {
        this.pattern.lastIndex += 1;
        continue;
      }
      found.push([match.index, match.index + match[0].length]);
      if (this.total + found.length >= MOST) break;
    }
    this.total += found.length;
    // A match may begin in the text still to come: the next scan starts where one could.
    const lastEnd = found.length ? found[found.length - 1][1] : target.from;
    target.from = Math.max(lastEnd, text.length - this.query.length + 1, 0);
    // From the last match back, so the offsets of earlier ones stay right as nodes split.
    const marked = [];
    for (let m = found.length - 1; m >= 0; m -= 1) {
      const [start, end] = found[m];
      const marks = [];
      for (let p = pieces.length - 1; p >= 0; p -= 1) {
        const piece = pieces[p];
        const pieceEnd = piece.start + piece.node.data.length;
        if (pieceEnd <= start || piece.start >= end) continue;
        let node = piece.node;
        const a = Math.max(start, piece.start) - piece.start;
        const b = Math.min(end, pieceEnd) - piece.start;
        if (b < node.data.length) node.splitText(b);
        if (a > 0) node = node.splitText(a);
        const mark = document.createElement("mark");
        mark.className = "hit";
        node.replaceWith(mark);
        mark.append(node);
        marks.unshift(mark);
      }
      marked.unshift(marks);
    }
    target.matches.push(...marked);
  }

  step(by) {
    const total = this.matches.length;
    if (!total) return;
    this.show((this.current + by + total) % total);
    this.drawCount();
  }

  show(index) {
    this.current = index;
    this.markCurrent();
    const marks = this.matches[index];
    if (marks && marks[0]) marks[0].scrollIntoView({ block: "nearest", inline: "nearest" });
  }

  markCurrent() {
    for (const target of this.targets) {
      for (const mark of target.el.querySelectorAll("mark.hit.current")) mark.classList.remove("current");
    }
    for (const mark of this.matches[this.current] || []) mark.classList.add("current");
  }

  drawCount() {
    const total = this.matches.length;
    const more = total >= MOST ? "+" : "";
    this.count.textContent = !this.query ? "" : total ? `${this.current + 1} of ${total}${more}` : "no match";
    this.count.dataset.total = String(total);
    this.previous.disabled = this.next.disabled = total === 0;
  }
}
