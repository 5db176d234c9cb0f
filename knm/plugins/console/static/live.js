// The progress WebSocket. The token goes in the first message ({"action": "auth"}), never in
// the URL. A dropped connection comes back and resubscribes from the last event seen; a
// `lagged` notice resubscribes from where events were dropped, so no event is missed. The page
// subscribes with `batch`: events come as arrays of them; an error answering a message of the
// page is still one object.

import { ROOT, token } from "./api.js";

export class Live {
  constructor(onEvent, onState = () => {}) {
    this.onEvent = onEvent;
    this.onState = onState;
    this.last = new Map(); // task id -> highest seq delivered
    this.socket = null;
    this.closed = false;
    this.retry = 500;
    this.timer = null;
  }

  subscribe(taskId) {
    if (!this.last.has(taskId)) this.last.set(taskId, 0);
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.#send(taskId);
    else if (!this.socket) this.#open();
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000, "page left");
  }

  #send(taskId) {
    // batch: the server sends what it has queued as one array of events, so a task streaming
    // thousands of events a second costs the page a few messages a frame.
    this.socket.send(JSON.stringify({ action: "subscribe", task_id: taskId, since: this.last.get(taskId), batch: true }));
  }

  #open() {
    const target = new URL("api/v1/progress/ws", ROOT);
    target.protocol = target.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(target);
    this.socket = socket;
    const sent = token() || "";
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ action: "auth", token: sent }));
      for (const taskId of this.last.keys()) this.#send(taskId);
      this.onState("open");
    });
    socket.addEventListener("message", (message) => this.#receive(message.data));
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.closed) return;
      // 4401 for a token since refreshed (it expired on this connection): come back with the
      // new one. For the current token it is final.
      if (event.code === 4401 && (!token() || token() === sent)) {
        this.onState("unauthorized", event.reason);
        return;
      }
      this.onState("reconnecting", event.reason);
      this.timer = setTimeout(() => this.#open(), this.retry);
      this.retry = Math.min(this.retry * 2, 10_000);
    });
  }

  #receive(text) {
    this.retry = 500; // a server that talks is back: the next drop retries quickly again
    let parsed;
    try {
      parsed = JSON.parse(text);
    } catch {
      return;
    }
    if (Array.isArray(parsed)) for (const event of parsed) this.#take(event);
    else this.#take(parsed);
  }

  #take(event) {
    if (!event || typeof event !== "object") return;
    const seen = this.last.get(event.task_id);
    if (event.type === "lagged") {
      const since = Number(event.data && event.data.since) || 0;
      this.last.set(event.task_id, Math.min(seen ?? since, since));
      if (this.socket) this.#send(event.task_id);
      return;
    }
    if (event.type !== "error") {
      // A replay after a reconnect can repeat what was already delivered.
      if (seen !== undefined && event.seq <= seen) return;
      this.last.set(event.task_id, event.seq);
    }
    this.onEvent(event);
  }
}
