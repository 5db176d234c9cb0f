// Workflow definitions as YAML text, as operators write them for `knm apply -f` and the docs:
// the stored definition (a JSON object) dumped for reading and editing, and the edited text
// loaded back with the line of each part, so that a problem the server reports for
// `definition.steps[2]` is shown at that step. JSON is YAML: a definition pasted as JSON loads
// the same. Parsing is js-yaml's (vendored unmodified: js-yaml.mjs, see ../THIRD_PARTY.md).

import { DEFAULT_SCHEMA, dump, JSON_SCHEMA, load } from "./js-yaml.mjs";

// A text that is not a definition the browser can send: its message at its line (1-based;
// null when the parser gave no place); `syntax` false when the YAML is valid but JSON cannot
// carry what it says.
export class YamlProblem extends Error {
  constructor(message, line, column, syntax = true) {
    super(message);
    this.line = line;
    this.column = column;
    this.syntax = syntax;
  }
}

// The definition as YAML for the editor and the diff. Dumped with js-yaml's widest schema (with
// timestamps) in its default compatibility mode, so every string another reader could take for
// something else is quoted: `'yes'`, `'on'`, `'2024-01-01'`, `'0777'`, `'1:30'`, `'null'`. The
// text then reads back as the same definition here (JSON schema) and in PyYAML's YAML 1.1
// (`knm apply -f`, the server). Keys keep their order; no anchors, no folding of long lines.
export function toYaml(value) {
  if (value === null || value === undefined) return "";
  return dump(value, { schema: DEFAULT_SCHEMA, lineWidth: -1, noRefs: true });
}

// YAML (or JSON) text loaded as the definition to send: {value, places}, places mapping a path
// ("steps", "steps[2]", "steps[2].command") to its line. A syntax error is a YamlProblem at
// its line, found without asking the server.
//
// Loaded with js-yaml's JSON schema (YAML 1.2's JSON-compatible one; its core schema is the
// same in js-yaml 4): only `true`/`false`, `null`/`~`/empty and numbers are read as other than
// strings. The definition is sent as JSON, so what the text means must be what JSON can say:
// the default schema would turn `2024-01-01` into a Date (sent as a timestamp string with a
// time the user never wrote) and read `<<` as a merge; YAML 1.1's reading (PyYAML's) would
// silently make `yes`, `no`, `on` and `off` booleans, so a `command: on` or a parameter's
// `default: no` would be changed under the user's feet. With this schema a word stays the
// word; where a boolean was meant, the server's validation refuses the string (a step's problem
// at that step's line).
export function loadLocated(source) {
  const text = String(source);
  // Every node js-yaml composes opens and closes in document order, children inside their
  // parent: the tree of {line, kind, result, children} built here mirrors the loaded value.
  const stack = [{ children: [] }];
  const listener = (event, state) => {
    if (event === "open") {
      stack.push({ line: state.line + 1, children: [] });
      return;
    }
    const node = stack.pop();
    node.kind = state.kind;
    node.result = state.result;
    stack[stack.length - 1].children.push(node);
  };
  let value;
  try {
    value = load(text, { schema: JSON_SCHEMA, listener });
  } catch (error) {
    if (!error || error.name !== "YAMLException") throw error;
    const mark = error.mark;
    throw new YamlProblem(error.reason || error.message, mark ? mark.line + 1 : null, mark ? mark.column + 1 : null);
  }
  const places = new Map();
  const root = stack[0].children[0];
  if (root) locate(root, "", places);
  finite(value, "", places);
  return { value: value === undefined ? null : value, places };
}

function join(path, key) {
  return path ? `${path}.${key}` : key;
}

// Each part's line, from the node tree. A mapping's children are its keys and values in turn;
// a sequence's are its items, but for an empty `- ` item (null, read without a node). Where the
// tree does not pair up so (explicit `?` keys, a key attempted past the end), the parts below
// keep their parent's line.
function locate(node, path, places) {
  places.set(path, node.line);
  const { kind, result, children } = node;
  // A flow collection at the start of a block node (`{...}`, `- {...}`) is read as a would-be
  // key first: the node holds it as its only child, with the same value.
  if (children.length === 1 && result !== null && typeof result === "object" && children[0].result === result) {
    locate(children[0], path, places);
    return;
  }
  if (kind === "mapping" && result && typeof result === "object") {
    const pairs = Math.floor(children.length / 2);
    if (pairs !== Object.keys(result).length) return;
    for (let i = 0; i < pairs; i += 1) {
      const key = children[2 * i].result;
      if (key === null || typeof key === "object" || !Object.hasOwn(result, String(key))) return;
    }
    for (let i = 0; i < pairs; i += 1) {
      const child = join(path, String(children[2 * i].result));
      locate(children[2 * i + 1], child, places);
      places.set(child, children[2 * i].line);
    }
  } else if (kind === "sequence" && Array.isArray(result)) {
    let next = 0;
    result.forEach((item, index) => {
      const child = children[next];
      if (child && child.result === item) {
        locate(child, `${path}[${index}]`, places);
        next += 1;
      }
    });
  }
}

// JSON has no infinity and no NaN (JSON.stringify would send null in their place): YAML's
// `.inf` and `.nan` are refused here, at their line.
function finite(value, path, places) {
  if (typeof value === "number" && !Number.isFinite(value)) {
    const word = Number.isNaN(value) ? ".nan" : ".inf";
    throw new YamlProblem(`${path || "the definition"}: ${word} is not a number JSON can carry (write a number, or quote it as a string)`, placeOf(places, path), null, false);
  }
  if (Array.isArray(value)) value.forEach((item, index) => finite(item, `${path}[${index}]`, places));
  else if (value && typeof value === "object") for (const [key, item] of Object.entries(value)) finite(item, join(path, key), places);
}

// The line of `path` ("steps[2].name") in `places`, or of the nearest enclosing part.
export function placeOf(places, path) {
  let at = path;
  for (;;) {
    if (places.has(at)) return places.get(at);
    if (!at) return null;
    const up = at.replace(/(\.[^.[\]]*|\[\d+\])$/, "");
    at = up === at ? "" : up;
  }
}
