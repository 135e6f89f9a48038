// The page's session: the access token in memory, the refresh token in the auth server's
// HttpOnly cookie, and one refresh at a time for every tab of this origin.
//
// - Page script never sees a password or a refresh token. The person signs in on the auth
//   server's hosted page (signin.js); the code that comes back is exchanged here, and the auth
//   server sets the refresh token as an HttpOnly, SameSite=Strict cookie scoped to its /token
//   and /revoke paths, and rotates it on every refresh (`credentials: "include"`).
// - The access token and the id_token (kept for logging out: the end-session endpoint's
//   `id_token_hint`) live in this module's memory only: not in localStorage, sessionStorage,
//   IndexedDB or a readable cookie. A reload gets new ones through a refresh.
// - Tabs share the cookie, so they must never refresh at the same time: a rotated refresh token
//   presented again is reuse and ends the session. Every refresh runs under one Web Lock. A tab
//   that finds the lock free refreshes, then posts the new access token on a BroadcastChannel;
//   a tab that finds it taken waits for that token instead of refreshing too (and queues for
//   the lock, in case the other tab fails or closes first). One refresh serves every tab.
//   Without Web Locks (an old browser, or a page that is not a secure context), the auth
//   server's grace window answers a tab that repeats the refresh another tab of the same browser
//   just made with the same pair.
// - The access token is renewed when an API answers 401, never on a timer: an idle tab costs
//   nothing, and the server's clock is the one that counts.

import { authUrl, config, redirectUri } from "./config.js";
import { expectOk, HttpError, send, SessionEnded } from "./http.js";

const LOCK = "notes-auth:refresh";
const IN_FLIGHT_MS = 250;
const channel = typeof BroadcastChannel === "function" ? new BroadcastChannel("notes-auth:session") : null;
const locks = globalThis.navigator && navigator.locks ? navigator.locks : null;

/** {token, claims} or null. */
let current = null;
/** The last id_token (OIDC), for the end-session endpoint's hint. */
let idToken = null;
let inflight = null;
const listeners = new Set();
const tokenWaiters = new Set();

/** Subscribe to {type: "signed-in", how, userChanged} and {type: "signed-out", reason}. */
export function onChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function emit(event) {
  for (const listener of listeners) listener(event);
}

export const signedIn = () => current !== null;
/** The access token's claims (sub, sid, exp, scope), for display and bookkeeping only. */
export const claims = () => (current ? current.claims : null);

function decodeClaims(token) {
  const part = token.split(".")[1] || "";
  const base64 = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=");
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

function adopt(token, how) {
  if (current && current.token === token) return;
  const previous = current;
  current = { token, claims: decodeClaims(token) };
  for (const wake of [...tokenWaiters]) wake();
  emit({ type: "signed-in", how, userChanged: !previous || previous.claims.sub !== current.claims.sub });
}

function publish(token) {
  if (channel) channel.postMessage({ type: "token", token, idToken });
}

function keepIdToken(token) {
  if (typeof token === "string" && token) idToken = token;
}

/** The id_token of the session, for logging out through the auth server (or null). */
export const currentIdToken = () => idToken;

/** Forget the session here and in every other tab of this origin that holds the same one. */
function drop(reason) {
  if (!current) return;
  const { sid } = current.claims;
  current = null;
  idToken = null;
  for (const wake of [...tokenWaiters]) wake();
  if (channel) channel.postMessage({ type: "signed-out", sid, reason });
  emit({ type: "signed-out", reason });
}

if (channel) {
  channel.addEventListener("message", ({ data }) => {
    if (!data || typeof data !== "object") return;
    if (data.type === "token" && typeof data.token === "string") {
      keepIdToken(data.idToken);
      adopt(data.token, "another-tab");
    } else if (data.type === "signed-out" && current && (!data.sid || data.sid === current.claims.sid)) {
      current = null;
      idToken = null;
      for (const wake of [...tokenWaiters]) wake();
      emit({ type: "signed-out", reason: data.reason === "logout" ? "logout-elsewhere" : data.reason });
    }
  });
}

async function tokenRequest(fields) {
  const response = await send(config.token_endpoint, {
    method: "POST",
    credentials: "include", // the refresh cookie goes there and comes back from there
    cache: "no-store",
    body: new URLSearchParams({ client_id: config.client_id, ...fields }),
  });
  return expectOk(response);
}

/** The sign-in's last step: the code from /callback for tokens (RFC 6749 §4.1.3, RFC 7636
 *  §4.5). The id_token must be for this client, from this issuer, with this sign-in's nonce
 *  (OIDC Core §3.1.3.7; it came straight from the token endpoint, so its signature needs no
 *  check here). Throws HttpError, ServerUnreachable, or Error("id-token"). */
export async function completeSignIn({ code, verifier, nonce }) {
  const data = await tokenRequest({
    grant_type: "authorization_code",
    code,
    code_verifier: verifier,
    redirect_uri: redirectUri(),
  });
  const claims = data.id_token ? decodeClaims(data.id_token) : null;
  const issuer = config.issuer.replace(/\/$/, "");
  if (!claims || claims.nonce !== nonce || claims.aud !== config.client_id || claims.iss !== issuer) {
    throw new Error("id-token");
  }
  keepIdToken(data.id_token);
  adopt(data.access_token, "login");
  publish(data.access_token);
}

/** The exchange itself, always under the lock when there is one. */
async function exchange(stale) {
  let data;
  try {
    data = await tokenRequest({ grant_type: "refresh_token" });
  } catch (error) {
    if (error instanceof HttpError && error.status === 400) {
      // A tab that logged in or refreshed meanwhile wins over our refusal.
      if (current && current.token !== stale) return current.token;
      if (stale !== null) drop("ended");
      throw new SessionEnded(stale === null ? "none" : "ended");
    }
    throw error;
  }
  keepIdToken(data.id_token);
  adopt(data.access_token, "refresh");
  publish(data.access_token);
  return data.access_token;
}

/** Resolves when another tab's token (or logout) arrives, or after `ms`. */
function nextChangeOrTimeout(ms) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      tokenWaiters.delete(done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    tokenWaiters.add(done);
  });
}

async function coordinatedRefresh(stale) {
  const fresh = () => current !== null && current.token !== stale;
  if (fresh()) return current.token;
  if (!locks) return exchange(stale);
  // Nobody else is refreshing: refresh now, holding the lock.
  const mine = await locks.request(LOCK, { ifAvailable: true }, (lock) =>
    lock ? exchange(stale).then((token) => ({ token })) : null,
  );
  if (mine) return mine.token;
  // Another tab is refreshing: its new token comes over the channel. Queue for the lock as
  // well, in case that tab fails or closes before it posts anything.
  return new Promise((resolve, reject) => {
    const abort = new AbortController();
    let settled = false;
    const finish = (settle, value) => {
      if (settled) return;
      settled = true;
      tokenWaiters.delete(wake);
      abort.abort();
      settle(value);
    };
    const wake = () => {
      if (fresh()) finish(resolve, current.token);
      else if (current === null && stale !== null) finish(reject, new SessionEnded("ended"));
    };
    tokenWaiters.add(wake);
    locks
      .request(LOCK, { signal: abort.signal }, async () => {
        // The tab before us posted its token just before it let go of the lock: give the
        // message a moment to arrive rather than spend the rotated cookie again.
        if (!settled && !fresh()) await nextChangeOrTimeout(IN_FLIGHT_MS);
        if (settled) return;
        if (fresh()) return finish(resolve, current.token);
        try {
          finish(resolve, await exchange(stale));
        } catch (error) {
          finish(reject, error);
        }
      })
      .catch((error) => {
        if (error && error.name !== "AbortError") finish(reject, error);
      });
  });
}

/**
 * A new access token for the one that failed (`stale`; null when the page has none yet). One
 * refresh at a time per tab, and across tabs. Throws SessionEnded when there is no session
 * any more, HttpError or ServerUnreachable when the auth server can't answer now.
 */
export function refresh(stale = current ? current.token : null) {
  if (!inflight) inflight = coordinatedRefresh(stale).finally(() => { inflight = null; });
  return inflight;
}

/** On load: a session from the cookie, if there is one. True when the page is signed in. */
export async function restore() {
  try {
    await refresh(null);
    return true;
  } catch (error) {
    if (error instanceof SessionEnded) return false;
    throw error;
  }
}

function withBearer(init, token) {
  const headers = new Headers(init.headers || {});
  headers.set("Authorization", `Bearer ${token}`);
  return { ...init, headers, credentials: "omit" };
}

/**
 * fetch with the access token. An answer of 401 (expired or revoked) gets one refresh and one
 * retry; a second 401 means the session is over.
 */
export async function authorized(url, init = {}) {
  if (!current) throw new SessionEnded("none");
  let token = current.token;
  let response = await send(url, withBearer(init, token));
  if (response.status !== 401) return response;
  token = await refresh(token);
  response = await send(url, withBearer(init, token));
  if (response.status === 401) {
    if (current && current.token === token) drop("ended");
    throw new SessionEnded("ended");
  }
  return response;
}

/** The current access token, for a request that must leave with the page (keepalive). */
export const accessToken = () => (current ? current.token : null);

/**
 * Log out: forget the token in every tab, then revoke the session at the auth server (the
 * refresh token comes from the cookie, which the answer clears). Resolves to false when the
 * server could not be told (the session then stays valid until it expires).
 */
export async function logOut(reason = "logout") {
  if (current) drop(reason);
  const revoke = async () => {
    try {
      const response = await send(config.revocation_endpoint, {
        method: "POST",
        credentials: "include",
        cache: "no-store",
        body: new URLSearchParams({ client_id: config.client_id }),
      });
      return response.ok;
    } catch {
      return false;
    }
  };
  return locks ? locks.request(LOCK, revoke) : revoke();
}

/** Log out everywhere: end every session of the user (every device), then this one's cookie. */
export async function logOutEverywhere() {
  const response = await authorized(authUrl("/sessions"), { method: "DELETE" });
  if (!response.ok) await expectOk(response);
  await logOut("everywhere");
}
