// Ansible extra vars as a user writes them: JSON, or the part of YAML people write for vars
// (nested mappings and lists, plain, quoted and flow scalars, comments). What this reader does
// not understand (anchors, tags, block scalars, multi-line plain scalars) is an error at its
// line, never a guess: the value sent is exactly what the text says, or nothing is sent.

export class VarsError extends Error {
  constructor(message, line) {
    super(line ? `line ${line}: ${message}` : message);
    this.line = line || null;
    this.reason = message;
  }
}

// The extra vars of `text` as an object; a VarsError (with its line) when it cannot be read.
export function parseVars(text) {
  const source = String(text || "");
  if (!source.trim()) return {};
  const first = source.trimStart()[0];
  const value = first === "{" || first === "[" ? parseJson(source) : parseYaml(source);
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new VarsError("extra vars must be a mapping of variable names to values", 1);
  }
  return value;
}

function lineAt(text, position) {
  return text.slice(0, position).split("\n").length;
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch (error) {
    const message = String(error.message || error);
    const line = /line (\d+)/.exec(message);
    const position = /position (\d+)/.exec(message);
    const at = line ? Number(line[1]) : position ? lineAt(text, Number(position[1])) : lineAt(text, jsonErrorAt(text));
    const shown = message.replace(/^JSON\.parse: /, "").replace(/, ".*" is not valid JSON$/s, "");
    throw new VarsError(`not valid JSON: ${shown}`, at);
  }
}

// Where JSON.parse gave up, for engines whose message has no position: a scan of the grammar.
function jsonErrorAt(text) {
  let i = 0;
  const ws = () => {
    while (i < text.length && " \t\r\n".includes(text[i])) i += 1;
  };
  const fail = () => {
    throw i;
  };
  const value = () => {
    ws();
    const c = text[i];
    if (c === "{") {
      i += 1;
      ws();
      if (text[i] === "}") return void (i += 1);
      for (;;) {
        ws();
        if (text[i] !== '"') fail();
        string();
        ws();
        if (text[i] !== ":") fail();
        i += 1;
        value();
        ws();
        if (text[i] === ",") i += 1;
        else if (text[i] === "}") return void (i += 1);
        else fail();
      }
    }
    if (c === "[") {
      i += 1;
      ws();
      if (text[i] === "]") return void (i += 1);
      for (;;) {
        value();
        ws();
        if (text[i] === ",") i += 1;
        else if (text[i] === "]") return void (i += 1);
        else fail();
      }
    }
    if (c === '"') return string();
    const m = /^(-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?|true|false|null)/.exec(text.slice(i));
    if (!m) fail();
    i += m[0].length;
  };
  const string = () => {
    i += 1;
    while (i < text.length && text[i] !== '"') {
      if (text[i] === "\n") fail();
      i += text[i] === "\\" ? 2 : 1;
    }
    if (i >= text.length) fail();
    i += 1;
  };
  try {
    value();
    ws();
    return i;
  } catch (at) {
    return typeof at === "number" ? at : 0;
  }
}

// --- YAML (the block part people write for variables) -----------------------------------------

// A `#` starts a comment at the line's start or after a blank, outside quotes.
function withoutComment(line) {
  let quote = "";
  for (let i = 0; i < line.length; i += 1) {
    const c = line[i];
    if (quote) {
      if (c === "\\" && quote === '"') i += 1;
      else if (c === quote) quote = "";
    } else if (c === '"' || c === "'") {
      if (i === 0 || /[\s:[{,-]/.test(line[i - 1])) quote = c;
    } else if (c === "#" && (i === 0 || /\s/.test(line[i - 1]))) {
      return line.slice(0, i);
    }
  }
  return line;
}

function tokenize(text) {
  const lines = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const number = index + 1;
    const line = withoutComment(raw).replace(/\s+$/, "");
    if (!line.trim()) return;
    const indent = /^ */.exec(line)[0].length;
    if (line[indent] === "\t") throw new VarsError("tabs cannot indent YAML; use spaces", number);
    const content = line.slice(indent);
    if (content === "---" || content === "...") {
      if (lines.length && content === "---") throw new VarsError("only one document is allowed", number);
      return;
    }
    lines.push({ indent, content, number });
  });
  return lines;
}

const KEY = /^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s#'"{}[\],&*!|>%@`-][^:]*?|-[^\s:][^:]*?)\s*:(?:\s+(.*)|$)/;

function isItem(content) {
  return content === "-" || content.startsWith("- ");
}

function parseYaml(text) {
  const lines = tokenize(text);
  if (!lines.length) return {};
  const state = { lines, i: 0 };
  const top = lines[0];
  if (top.indent !== 0) throw new VarsError("unexpected indentation", top.number);
  const value = block(state, 0);
  if (state.i < lines.length) {
    throw new VarsError("unexpected indentation or text after the value", lines[state.i].number);
  }
  return value;
}

function block(state, indent) {
  const line = state.lines[state.i];
  if (isItem(line.content)) return sequence(state, indent);
  if (KEY.test(line.content)) return mapping(state, indent);
  // A lone scalar on its own line (the value of a key written on the line above).
  state.i += 1;
  return scalar(line.content, line.number);
}

function nested(state, parent, number) {
  const next = state.lines[state.i];
  if (next && next.indent > parent) return block(state, next.indent);
  return null;
}

function mapping(state, indent) {
  const out = {};
  while (state.i < state.lines.length) {
    const line = state.lines[state.i];
    if (line.indent < indent) break;
    if (line.indent > indent) throw new VarsError("unexpected indentation", line.number);
    if (isItem(line.content)) throw new VarsError("a list item where a key was expected", line.number);
    const match = KEY.exec(line.content);
    if (!match) throw new VarsError(`expected "name: value", got ${JSON.stringify(line.content)}`, line.number);
    const key = keyOf(match[1], line.number);
    if (Object.prototype.hasOwnProperty.call(out, key)) throw new VarsError(`duplicate key ${key}`, line.number);
    state.i += 1;
    const rest = match[2];
    let value;
    if (rest === undefined || rest === "") {
      const next = state.lines[state.i];
      // "key:" then a list at the same indentation is YAML's compact form.
      if (next && next.indent === indent && isItem(next.content)) value = sequence(state, indent);
      else value = nested(state, indent, line.number);
    } else {
      value = scalar(rest, line.number);
    }
    out[key] = value;
  }
  return out;
}

function sequence(state, indent) {
  const out = [];
  while (state.i < state.lines.length) {
    const line = state.lines[state.i];
    if (line.indent < indent) break;
    if (line.indent > indent) throw new VarsError("unexpected indentation", line.number);
    if (!isItem(line.content)) break;
    const rest = line.content.slice(1).replace(/^ +/, "");
    if (!rest) {
      state.i += 1;
      out.push(nested(state, indent, line.number));
      continue;
    }
    const inner = indent + (line.content.length - rest.length);
    if (isItem(rest) || KEY.test(rest)) {
      // "- key: value": a mapping (or list) that starts on the item's line.
      state.lines[state.i] = { indent: inner, content: rest, number: line.number };
      out.push(block(state, inner));
    } else {
      state.i += 1;
      out.push(scalar(rest, line.number));
    }
  }
  return out;
}

function keyOf(text, number) {
  if (text.startsWith('"') || text.startsWith("'")) {
    const key = scalar(text, number);
    return String(key);
  }
  return text;
}

function scalar(text, number) {
  const value = text.trim();
  const c = value[0];
  if (c === '"') {
    const end = closing(value, '"');
    if (end !== value.length - 1) throw new VarsError("text after a quoted value, or an unclosed quote", number);
    try {
      return JSON.parse(value);
    } catch {
      throw new VarsError("a double-quoted value with an escape this reader does not know", number);
    }
  }
  if (c === "'") {
    const end = closing(value, "'");
    if (end !== value.length - 1) throw new VarsError("text after a quoted value, or an unclosed quote", number);
    return value.slice(1, -1).replace(/''/g, "'");
  }
  if (c === "{" || c === "[") {
    try {
      return JSON.parse(value);
    } catch {
      throw new VarsError(`a ${c === "{" ? "{…} mapping" : "[…] list"} on one line must be JSON (quote its strings), and closed`, number);
    }
  }
  if (c === "|" || c === ">") throw new VarsError("block scalars (| and >) are not supported here: write the text quoted, with \\n", number);
  if (c === "&" || c === "*") throw new VarsError("anchors and aliases are not supported here", number);
  if (c === "!") throw new VarsError("tags are not supported here", number);
  if (c === "@" || c === "`" || c === "%") throw new VarsError(`a plain value cannot start with ${c}: quote it`, number);
  if (/:\s/.test(value) || value.endsWith(":")) throw new VarsError("a value cannot hold \": \" unless it is quoted", number);
  // Booleans and numbers as Ansible's YAML (1.1) reads them, so `enabled: no` is false there and
  // here; forms that YAML 1.1 reads in a way people do not expect are refused, not guessed.
  if (/^(true|True|TRUE|yes|Yes|YES|on|On|ON)$/.test(value)) return true;
  if (/^(false|False|FALSE|no|No|NO|off|Off|OFF)$/.test(value)) return false;
  if (/^[-+]?(0[0-9]+|0[xXoObB][0-9a-fA-F_]+|[0-9][0-9_]*_[0-9_]*|\.(inf|Inf|INF|nan|NaN|NAN))$/.test(value)) {
    throw new VarsError(`${value} means a different number to YAML than it seems: quote it for text, or write it plainly`, number);
  }
  if (/^(null|Null|NULL|~)$/.test(value)) return null;
  if (/^[-+]?\d+$/.test(value)) {
    const n = Number(value);
    return Number.isSafeInteger(n) ? n : value;
  }
  if (/^[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$/.test(value)) return Number(value);
  return value;
}

function closing(text, quote) {
  for (let i = 1; i < text.length; i += 1) {
    if (quote === '"' && text[i] === "\\") i += 1;
    else if (text[i] === quote) {
      if (quote === "'" && text[i + 1] === "'") i += 1;
      else return i;
    }
  }
  return -1;
}
