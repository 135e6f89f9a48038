// Signing in and out through the auth server's hosted pages: the authorization code flow with
// PKCE (RFC 7636) and OpenID Connect, as a public client (`web-page`). This page never sees a
// password: "Log in" and "Sign up" send the browser to the auth server, which sends it back to
// /callback with a code.
//
// What has to survive the trip, the PKCE verifier, `state` and `nonce`, waits in sessionStorage
// (this tab only) and is removed the moment the page comes back; the code leaves the address
// bar and the history at once. Logging out goes through the auth server's end-session endpoint
// (OIDC RP-Initiated Logout), which ends its browser session too.

import { config, redirectUri } from "./config.js";

const SIGN_IN = "notes-auth:sign-in";
const SIGN_OUT = "notes-auth:sign-out";

/** The sign-in came back refused, or not as this page sent it; `reason` says which. */
export class SignInFailed extends Error {
  constructor(reason) {
    super(`sign-in failed: ${reason}`);
    this.name = "SignInFailed";
    this.reason = reason;
  }
}

const base64url = (bytes) =>
  btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const random = (size) => base64url(crypto.getRandomValues(new Uint8Array(size)));

async function s256(verifier) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

const sameIssuer = (a, b) => String(a || "").replace(/\/$/, "") === String(b || "").replace(/\/$/, "");

/** Off to the auth server's sign-in page (or, for "signup", its sign-up page). */
export async function start(kind = "login") {
  const verifier = random(32); // 256 bits, 43 characters (RFC 7636 §4.1)
  const state = random(16);
  const nonce = random(16);
  sessionStorage.setItem(SIGN_IN, JSON.stringify({ verifier, state, nonce, back: location.hash }));
  const url = new URL(config.authorization_endpoint);
  const params = {
    response_type: "code",
    client_id: config.client_id,
    redirect_uri: redirectUri(),
    scope: config.scope,
    state,
    nonce,
    code_challenge: await s256(verifier),
    code_challenge_method: "S256",
  };
  if (kind === "signup") params.prompt = "create";
  url.search = new URLSearchParams(params).toString();
  location.assign(url.toString());
}

export const isCallback = () => location.pathname === "/callback";

/**
 * On /callback: the code, with what start() kept for it, which is forgotten now. Throws
 * SignInFailed when the answer is an error or isn't the answer to this tab's request (another
 * state, another issuer: RFC 9207).
 */
export function takeCallback() {
  const params = new URLSearchParams(location.search);
  const kept = JSON.parse(sessionStorage.getItem(SIGN_IN) || "null");
  sessionStorage.removeItem(SIGN_IN);
  history.replaceState(null, "", `/${kept && kept.back ? kept.back : ""}`);
  if (!kept || params.get("state") !== kept.state) throw new SignInFailed("state");
  if (!sameIssuer(params.get("iss"), config.issuer)) throw new SignInFailed("issuer");
  if (params.get("error")) throw new SignInFailed(params.get("error"));
  const code = params.get("code");
  if (!code) throw new SignInFailed("no-code");
  return { code, verifier: kept.verifier, nonce: kept.nonce };
}

/** Off to the auth server's end-session endpoint, which ends its browser session and sends the
 *  browser back to this page. */
export function endSession(idToken) {
  const state = random(16);
  sessionStorage.setItem(SIGN_OUT, state);
  const url = new URL(config.end_session_endpoint);
  const params = { client_id: config.client_id, post_logout_redirect_uri: `${location.origin}/`, state };
  if (idToken) params.id_token_hint = idToken;
  url.search = new URLSearchParams(params).toString();
  location.assign(url.toString());
}

/** Whether this load is the way back from the end-session endpoint (the address is cleaned). */
export function takeSignOutReturn() {
  const kept = sessionStorage.getItem(SIGN_OUT);
  sessionStorage.removeItem(SIGN_OUT);
  const params = new URLSearchParams(location.search);
  if (!params.has("state")) return false;
  history.replaceState(null, "", "/");
  return kept !== null && params.get("state") === kept;
}
