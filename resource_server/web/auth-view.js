// Logged out: "Log in" and "Sign up" (both on the auth server's hosted pages), and what the page
// says about how the last session ended or why a sign-in failed.

import { describe } from "./http.js";
import * as signin from "./signin.js";
import { busy, byId, say } from "./ui.js";

const NOTICES = {
  ended: ["Your session has ended. That happens when you log out everywhere or change your password on another device, or when a session gets too old. Log in again to continue.", "warning"],
  everywhere: ["You logged out everywhere. Every device, this one included, has to log in again.", "info"],
  "logout-elsewhere": ["You logged out in another tab.", "info"],
  logout: ["You're logged out. See you soon.", "info"],
  "logout-unconfirmed": ["You're logged out on this page, but the server couldn't be reached to end the session. Log in and out again when you're back online.", "warning"],
};

const FAILURES = {
  state: "That sign-in didn't start on this page, so it was ignored. Log in again.",
  issuer: "That sign-in came back from an unexpected server, so it was ignored. Log in again.",
  access_denied: "The sign-in was cancelled. Log in again when you're ready.",
  "id-token": "The sign-in couldn't be checked, so it was ignored. Log in again.",
  "code-refused": "That sign-in took too long or was already used. Log in again.",
};

/** Say why the signed-out view is showing (a session that ended, a logout), or nothing. */
export function notice(reason) {
  const [message, kind] = NOTICES[reason] || ["", "info"];
  say(byId("auth-notice"), message, kind);
}

/** Say why a sign-in failed: a SignInFailed reason, or an error of the code exchange. */
export function failed(error) {
  let message;
  if (error instanceof signin.SignInFailed) {
    message = FAILURES[error.reason] || `The sign-in didn't complete (${error.reason}). Log in again.`;
  } else {
    message = describe(error, "sign you in");
  }
  say(byId("auth-error"), message || "");
}

export function focus() {
  byId("log-in").focus();
}

async function go(kind, button) {
  say(byId("auth-error"), "");
  busy(button, true, kind === "signup" ? "Opening sign-up…" : "Opening sign-in…");
  try {
    await signin.start(kind);
  } catch (error) {
    busy(button, false);
    failed(error);
  }
}

export function wire() {
  byId("log-in").addEventListener("click", (event) => go("login", event.currentTarget));
  byId("sign-up").addEventListener("click", (event) => go("signup", event.currentTarget));
  // Back from the auth server through the history (the back/forward cache): usable again.
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) for (const id of ["log-in", "sign-up"]) busy(byId(id), false);
  });
}
