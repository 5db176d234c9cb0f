// A line diff (Myers' O(ND) algorithm) and its unified rendering, as text nodes: what changed
// between two versions of a playbook, script or workflow, as `knm playbook diff` prints it.

import { h } from "./dom.js";

// Past this many differing lines the diff is "all old lines removed, all new added": the
// algorithm's time and memory grow with the square of the differences.
const MAX_EDITS = 4000;

export function lines(text) {
  if (!text) return [];
  const all = String(text).split("\n");
  if (all[all.length - 1] === "") all.pop();
  return all;
}

// The edit script from `a` to `b` (arrays of lines): [{op: " "|"-"|"+", text}] in order.
export function diffLines(a, b) {
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start += 1;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA -= 1;
    endB -= 1;
  }
  const middle = myers(a.slice(start, endA), b.slice(start, endB));
  return [
    ...a.slice(0, start).map((text) => ({ op: " ", text })),
    ...middle,
    ...a.slice(endA).map((text) => ({ op: " ", text })),
  ];
}

function myers(a, b) {
  const n = a.length;
  const m = b.length;
  if (n === 0 || m === 0 || n + m > 200_000) return replaced(a, b);
  const max = Math.min(n + m, MAX_EDITS);
  const off = max + 1;
  const v = new Int32Array(2 * max + 3);
  // trace[d]: the furthest x of each diagonal k (from -d to d) before round d.
  const trace = [];
  for (let d = 0; d <= max; d += 1) {
    trace.push(v.slice(off - d, off + d + 1));
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && v[off + k - 1] < v[off + k + 1]) ? v[off + k + 1] : v[off + k - 1] + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x += 1;
        y += 1;
      }
      v[off + k] = x;
      if (x >= n && y >= m) return backtrack(trace, a, b, d);
    }
  }
  return replaced(a, b);
}

function backtrack(trace, a, b, last) {
  const ops = [];
  let x = a.length;
  let y = b.length;
  for (let d = last; d > 0; d -= 1) {
    const before = trace[d];
    const at = (k) => before[k + d];
    const k = x - y;
    const prevK = k === -d || (k !== d && at(k - 1) < at(k + 1)) ? k + 1 : k - 1;
    const prevX = at(prevK);
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) {
      ops.push({ op: " ", text: a[x - 1] });
      x -= 1;
      y -= 1;
    }
    if (x === prevX) ops.push({ op: "+", text: b[y - 1] });
    else ops.push({ op: "-", text: a[x - 1] });
    x = prevX;
    y = prevY;
  }
  while (x > 0 && y > 0) {
    ops.push({ op: " ", text: a[x - 1] });
    x -= 1;
    y -= 1;
  }
  return ops.reverse();
}

function replaced(a, b) {
  return [...a.map((text) => ({ op: "-", text })), ...b.map((text) => ({ op: "+", text }))];
}

// The edit script cut into hunks with `context` unchanged lines around each change, as
// `diff -u` does: [{oldStart, oldCount, newStart, newCount, lines: [{op, text}]}].
export function hunks(ops, context = 3) {
  const keep = new Uint8Array(ops.length);
  ops.forEach((line, index) => {
    if (line.op === " ") return;
    for (let i = Math.max(0, index - context); i <= Math.min(ops.length - 1, index + context); i += 1) keep[i] = 1;
  });
  const found = [];
  let oldNo = 1;
  let newNo = 1;
  let current = null;
  ops.forEach((line, index) => {
    if (!keep[index]) current = null;
    else {
      if (!current) {
        current = { oldStart: oldNo, newStart: newNo, oldCount: 0, newCount: 0, lines: [] };
        found.push(current);
      }
      current.lines.push(line);
      if (line.op !== "+") current.oldCount += 1;
      if (line.op !== "-") current.newCount += 1;
    }
    if (line.op !== "+") oldNo += 1;
    if (line.op !== "-") newNo += 1;
  });
  return found;
}

// The unified diff of two texts as a <pre>: headers, hunk headers and lines, each a text node.
export function unifiedDiff(oldText, newText, oldLabel, newLabel, id = "diff") {
  const found = hunks(diffLines(lines(oldText), lines(newText)));
  const pre = h("pre", { class: "diff", id });
  if (!found.length) {
    pre.append(h("div", { class: "d-none" }, "No differences."));
    return pre;
  }
  pre.append(h("div", { class: "d-file" }, `--- ${oldLabel}`), h("div", { class: "d-file" }, `+++ ${newLabel}`));
  for (const hunk of found) {
    const range = (start, count) => (count === 1 ? `${start}` : `${count ? start : start - 1},${count}`);
    pre.append(h("div", { class: "d-hunk" }, `@@ -${range(hunk.oldStart, hunk.oldCount)} +${range(hunk.newStart, hunk.newCount)} @@`));
    for (const line of hunk.lines) {
      const cls = line.op === "+" ? "d-add" : line.op === "-" ? "d-del" : "d-ctx";
      pre.append(h("div", { class: cls }, `${line.op}${line.text}`));
    }
  }
  return pre;
}
