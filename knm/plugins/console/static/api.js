// The console's only way to the server: knm's public API, with the user's token in the
// Authorization header (never in a URL), kept in this tab's sessionStorage.

// The page's assets live at <prefix>/console/; knm's root is the folder above.
export const ROOT = new URL("..", import.meta.url);
export const API = new URL("api/v1/", ROOT);

const KEY = "knm.console.session";
const RANKS = { viewer: 0, operator: 1, admin: 2 };

let session = null;
try {
  session = JSON.parse(sessionStorage.getItem(KEY) || "null");
} catch {
  session = null;
}

export class ApiError extends Error {
  constructor(status, envelope) {
    const message = (envelope && envelope.message) || `HTTP ${status}`;
    super(message);
    this.status = status;
    this.detail = (envelope && envelope.error) || "";
    this.details = (envelope && envelope.details) || [];
  }
}

export function token() {
  return session ? session.token : null;
}

export function user() {
  return session ? session.user : null;
}

// True when the logged-in user's role is at least `role`.
export function can(role) {
  const mine = session && session.user ? RANKS[session.user.role] : undefined;
  return mine !== undefined && mine >= RANKS[role];
}

let refreshTimer = 0;

function save(next) {
  session = next;
  clearTimeout(refreshTimer);
  if (next) {
    sessionStorage.setItem(KEY, JSON.stringify(next));
    keepFresh();
  } else {
    sessionStorage.removeItem(KEY);
  }
}

// A JWT lives KNM_TOKEN_TTL: swap it for a fresh one (POST /auth/refresh) when most of its
// life is spent, while the tab is open. Past the session's maximum age the server says 401
// and the user logs in again.
function keepFresh() {
  const expires = Date.parse(session.expires_at || "");
  if (Number.isNaN(expires)) return;
  const wait = Math.max(5_000, (expires - Date.now()) * 0.8);
  refreshTimer = setTimeout(async () => {
    try {
      const data = await request("POST", "auth/refresh");
      save({ ...session, token: data.token, expires_at: data.expires_at });
    } catch {
      // A 401 has logged the user out already; anything else tries again later.
      if (session) refreshTimer = setTimeout(keepFresh, 30_000);
    }
  }, Math.min(wait, 2 ** 31 - 1));
}

export async function login(username, password) {
  const data = await request("POST", "auth/login", { body: { username, password }, anonymous: true });
  save({ token: data.token, expires_at: data.expires_at, user: data.user });
  // The role as the server sees it now.
  save({ ...session, user: await request("GET", "auth/me") });
  return session.user;
}

export function logout() {
  save(null);
}

if (session) keepFresh();

function url(path, query) {
  const target = new URL(path, API);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") target.searchParams.set(key, value);
  }
  return target;
}

async function send(method, path, { body, query, anonymous, headers } = {}) {
  const all = { Accept: "application/json", ...(headers || {}) };
  if (body !== undefined) all["Content-Type"] = "application/json";
  const sent = anonymous ? null : session;
  if (sent) all.Authorization = `Bearer ${sent.token}`;
  const response = await fetch(url(path, query), {
    method,
    headers: all,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
    cache: "no-store",
  });
  // Only the session this request carried is over: a view still loading after the first 401
  // gets more of them, and by then the user may have logged in again.
  if (response.status === 401 && sent && session === sent) {
    save(null);
    window.dispatchEvent(new CustomEvent("knm:logged-out"));
  }
  return response;
}

// The `data` of a success envelope; an ApiError carrying the failure envelope otherwise.
export async function request(method, path, options = {}) {
  const response = await send(method, path, options);
  let envelope = null;
  try {
    envelope = await response.json();
  } catch {
    envelope = null;
  }
  if (!response.ok) throw new ApiError(response.status, envelope);
  return envelope ? envelope.data : null;
}

// Raw bytes (a node's stored output), from `offset` on.
export async function bytes(path, query, offset) {
  const headers = offset > 0 ? { Range: `bytes=${offset}-` } : {};
  const response = await send("GET", path, { query, headers: { ...headers, Accept: "text/plain" } });
  if (!response.ok) {
    let envelope = null;
    try {
      envelope = await response.json();
    } catch {
      envelope = null;
    }
    throw new ApiError(response.status, envelope);
  }
  return new Uint8Array(await response.arrayBuffer());
}

// Every page of a list route, `plural` being the list's field (`nodes`, `clusters`).
export async function all(path, plural, query = {}, limit = 5000) {
  const items = [];
  for (let page = 1; items.length < limit; page += 1) {
    const data = await request("GET", path, { query: { ...query, page, page_size: 100 } });
    items.push(...data[plural]);
    if (items.length >= data.total || data[plural].length === 0) break;
  }
  return items;
}

// Executor routes by task kind (`/automation/<route>/cancel/…`); a plugin's kind is its route.
const ROUTES = { ssh: "ssh", ansible: "ansible", script: "scripts", k8s: "k8s", workflow: "workflows" };

export function routeOf(kind) {
  return ROUTES[kind] || kind;
}
