// Terminal colors in node output: ANSI SGR sequences (colors, bold) become spans whose classes
// come from a fixed list; every other escape sequence is dropped. The text itself only ever
// becomes text nodes, so markup in output stays text.

const ESC = "\u001b";
// CSI (ESC [ parameters final), OSC (ESC ] … BEL or ESC \), or a two-byte escape (not the
// "[" or "]" that start the others: cut short, those wait for the rest).
const SEQUENCE = /\u001b\[([0-9;:?]*)([@-~])|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)|\u001b[@-Z\\^_]/g;
// An escape cut off at the end of a chunk is kept for the next one (if it is this short).
const LONGEST_CUT = 64;

export class AnsiWriter {
  constructor(target) {
    this.target = target;
    this.carry = "";
    this.fg = null;
    this.bg = null;
    this.bold = false;
  }

  write(text) {
    text = this.carry + text;
    this.carry = "";
    const cut = text.lastIndexOf(ESC);
    if (cut !== -1 && text.length - cut < LONGEST_CUT && !complete(text.slice(cut))) {
      this.carry = text.slice(cut);
      text = text.slice(0, cut);
    }
    let at = 0;
    SEQUENCE.lastIndex = 0;
    for (let match = SEQUENCE.exec(text); match; match = SEQUENCE.exec(text)) {
      this.emit(text.slice(at, match.index));
      at = match.index + match[0].length;
      if (match[2] === "m") this.style(match[1]);
    }
    this.emit(text.slice(at));
  }

  emit(text) {
    if (!text) return;
    const classes = [];
    if (this.fg !== null) classes.push(`fg-${this.fg}`);
    if (this.bg !== null) classes.push(`bg-${this.bg}`);
    if (this.bold) classes.push("ansi-bold");
    if (!classes.length) {
      this.target.append(document.createTextNode(text));
      return;
    }
    const span = document.createElement("span");
    span.className = classes.join(" ");
    span.textContent = text;
    this.target.append(span);
  }

  style(parameters) {
    const codes = parameters === "" ? [0] : parameters.split(/[;:]/).map((p) => Number(p) || 0);
    for (let i = 0; i < codes.length; i += 1) {
      const code = codes[i];
      if (code === 0) [this.fg, this.bg, this.bold] = [null, null, false];
      else if (code === 1) this.bold = true;
      else if (code === 22) this.bold = false;
      else if (code >= 30 && code <= 37) this.fg = code - 30;
      else if (code >= 90 && code <= 97) this.fg = code - 90 + 8;
      else if (code === 39) this.fg = null;
      else if (code >= 40 && code <= 47) this.bg = code - 40;
      else if (code >= 100 && code <= 107) this.bg = code - 100 + 8;
      else if (code === 49) this.bg = null;
      else if (code === 38 || code === 48) {
        // 256 colors (5;n) map onto the 16 when they are among them; true color is skipped.
        const mode = codes[i + 1];
        const value = codes[i + 2];
        if (mode === 5 && value < 16) {
          if (code === 38) this.fg = value;
          else this.bg = value;
        }
        i += mode === 5 ? 2 : mode === 2 ? 4 : 1;
      }
    }
  }
}

function complete(tail) {
  SEQUENCE.lastIndex = 0;
  const match = SEQUENCE.exec(tail);
  return match !== null && match.index === 0;
}
