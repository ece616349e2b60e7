// The public API, as the console calls it. Three ways to be signed in:
//  - a session (POST /v1/session set an HttpOnly cookie; writes send X-CSRF-Token),
//  - an API key pasted into the sign-in form (kept in sessionStorage, sent as X-API-Key),
//  - a viewer token (the embed page's ?token=, sent as Authorization: Bearer).

const KEY_STORE = "auditstream.key";
const VIEWER_STORE = "auditstream.viewer";

export const auth = { mode: null, key: null, csrf: null, user: null };

export class ApiError extends Error {
  constructor(status, problem) {
    const detail = (problem && (problem.detail || problem.title)) || `HTTP ${status}`;
    const reasons = ((problem && problem.errors) || [])
      .map((e) => `${e.field}: ${e.reason}`).join("; ");
    super(reasons ? `${detail} (${reasons})` : detail);
    this.status = status;
    this.problem = problem;
  }
}

export function headers(method = "GET") {
  const h = {};
  if (auth.mode === "key") h["X-API-Key"] = auth.key;
  if (auth.mode === "viewer") h["Authorization"] = "Bearer " + auth.key;
  if (auth.mode === "session" && method !== "GET" && method !== "HEAD") {
    h["X-CSRF-Token"] = auth.csrf;
  }
  return h;
}

export async function request(path, { method = "GET", body, accept, signal } = {}) {
  const h = headers(method);
  if (body !== undefined) h["Content-Type"] = "application/json";
  if (accept) h["Accept"] = accept;
  const res = await fetch(path, {
    method, headers: h, signal, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) {
    let problem = null;
    try { problem = await res.json(); } catch { /* not JSON */ }
    throw new ApiError(res.status, problem);
  }
  return res;
}

export async function json(path, opts) {
  const res = await request(path, opts);
  return res.status === 204 ? null : res.json();
}

export async function text(path, opts) {
  return (await request(path, opts)).text();
}

export function query(params) {
  const out = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") out.append(k, v);
  }
  return out.toString();
}

// Who is signed in: an existing session, a stored key, or the embed page's token.
export async function restore(embed) {
  if (embed) {
    const url = new URL(location.href);
    const token = url.searchParams.get("token") || sessionStorage.getItem(VIEWER_STORE);
    if (!token) return false;
    sessionStorage.setItem(VIEWER_STORE, token);
    if (url.searchParams.has("token")) {
      url.searchParams.delete("token");  // keep it out of the address bar and history
      history.replaceState(null, "", url);
    }
    Object.assign(auth, { mode: "viewer", key: token, user: "viewer" });
    return true;
  }
  try {
    const s = await json("/v1/session");
    Object.assign(auth, { mode: "session", csrf: s.csrf_token, user: s.username,
                          scopes: s.scopes, tenant: s.tenant });
    return true;
  } catch { /* no session */ }
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) {
    Object.assign(auth, { mode: "key", key, user: "API key", scopes: null });
    try { await json("/v1/events?limit=1"); return true; } catch { sessionStorage.removeItem(KEY_STORE); }
  }
  Object.assign(auth, { mode: null, key: null });
  return false;
}

export async function signIn(username, password) {
  const s = await json("/v1/session", { method: "POST", body: { username, password } });
  Object.assign(auth, { mode: "session", csrf: s.csrf_token, user: s.username,
                        scopes: s.scopes, tenant: s.tenant });
}

export async function useKey(key) {
  Object.assign(auth, { mode: "key", key, user: "API key", scopes: null });
  await json("/v1/events?limit=1");  // throws if the key cannot read
  sessionStorage.setItem(KEY_STORE, key);
}

export async function signOut() {
  if (auth.mode === "session") await request("/v1/session", { method: "DELETE" });
  sessionStorage.removeItem(KEY_STORE);
  Object.assign(auth, { mode: null, key: null, csrf: null, user: null, scopes: null });
}
