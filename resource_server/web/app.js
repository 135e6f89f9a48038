// The notes web page: the entry module. On /callback it finishes a sign-in (the code from the
// auth server's hosted sign-in); otherwise it restores the session (a refresh through the auth
// server's HttpOnly cookie). Then it shows the notes or the signed-out view, and switches
// between the views when the session or the address (#/notes, #/account) changes.
//
// Modules: session.js (tokens and tabs), signin.js (code + PKCE, end session), http.js (errors
// and their words), auth-view.js (log in, sign up), notes.js, account.js, ui.js (DOM helpers),
// config.js (/web-config.json).

import * as account from "./account.js";
import * as authView from "./auth-view.js";
import { loadConfig } from "./config.js";
import { describe } from "./http.js";
import * as notes from "./notes.js";
import * as session from "./session.js";
import * as signin from "./signin.js";
import { busy, byId, say } from "./ui.js";

const SIGNED_IN_ROUTES = ["notes", "account"];
const SIGNED_OUT_ROUTES = ["login"];
let wanted = null; // where a visitor was going before the login form

function route() {
  const name = location.hash.replace(/^#\/?/, "").split(/[/?]/)[0];
  return name || null;
}

function go(name) {
  if (location.hash.replace(/^#\/?/, "") !== name) history.replaceState(null, "", `#/${name}`);
}

function setState(state) {
  document.documentElement.dataset.state = state;
  byId("splash").hidden = state !== "loading" && state !== "offline";
  byId("nav").hidden = state !== "signed-in";
  byId("who").hidden = state !== "signed-in";
}

/** Show the view for the session state and the address. */
function render({ focus = true } = {}) {
  const state = document.documentElement.dataset.state;
  if (state !== "signed-in" && state !== "signed-out") return;
  let name = route();
  if (state === "signed-in") {
    if (!SIGNED_IN_ROUTES.includes(name)) {
      // Where the visitor was going before signing in: kept in memory, and in the address
      // (#/login/account) across the trip to the auth server's sign-in page and back.
      const after = location.hash.replace(/^#\/?/, "").split("/")[1];
      if (!wanted && SIGNED_IN_ROUTES.includes(after)) wanted = after;
      name = wanted && SIGNED_IN_ROUTES.includes(wanted) ? wanted : "notes";
      wanted = null;
      go(name);
    }
  } else if (!SIGNED_OUT_ROUTES.includes(name)) {
    if (SIGNED_IN_ROUTES.includes(name)) wanted = name;
    name = "login";
    go(wanted ? `login/${wanted}` : name);
  }
  byId("auth-view").hidden = state !== "signed-out";
  byId("notes-view").hidden = name !== "notes";
  byId("account-view").hidden = name !== "account";
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.route === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = { notes: "Notes", account: "Account · Notes", login: "Log in · Notes" }[name];
  if (state === "signed-out") {
    if (focus) authView.focus();
  } else if (name === "notes") {
    notes.show();
    if (focus) byId("notes-title").focus();
  } else {
    account.show();
    if (focus) byId("account-title").focus();
  }
}

async function greet() {
  try {
    const user = await account.whoAmI();
    byId("who-name").textContent = user.username;
    account.avatar(byId("who-avatar"), user);
    byId("notes-greeting").textContent = `Logged in as ${user.username}`;
  } catch (error) {
    describe(error, "load your profile"); // the header stays anonymous; views say what failed
  }
}

function onSessionChange(event) {
  const state = document.documentElement.dataset.state;
  if (event.type === "signed-in") {
    if (event.userChanged) {
      notes.reset();
      account.reset();
      greet();
    }
    if (state !== "signed-in" || event.userChanged) {
      authView.notice(null);
      setState("signed-in");
      render({ focus: event.how === "login" });
    }
  } else {
    notes.reset();
    account.reset();
    byId("who-name").textContent = "";
    byId("notes-greeting").textContent = "";
    if (state === "loading") return; // the first load decides for itself
    setState("signed-out");
    authView.notice(event.reason);
    render({ focus: event.reason !== "ended" });
  }
}

async function logOut() {
  const button = byId("logout");
  busy(button, true, "Logging out…");
  try {
    await notes.flush();
    const idToken = session.currentIdToken();
    const told = await session.logOut("logout");
    if (!told) {
      authView.notice("logout-unconfirmed");
      return;
    }
    // This page's session is revoked; the auth server's sign-in (the browser session that
    // would sign this browser in again without a password) ends at its end-session endpoint,
    // which sends the browser back here.
    signin.endSession(idToken);
  } finally {
    busy(button, false);
  }
}

/** On /callback: exchange the code; false (with the reason shown) when the sign-in failed. */
async function finishSignIn() {
  let answer;
  try {
    answer = signin.takeCallback();
  } catch (error) {
    authView.failed(error);
    return false;
  }
  byId("splash-text").textContent = "Signing you in…";
  try {
    await session.completeSignIn(answer);
    return true;
  } catch (error) {
    if (error && error.message === "id-token") authView.failed(new signin.SignInFailed("id-token"));
    else if (error && error.status === 400) authView.failed(new signin.SignInFailed("code-refused"));
    else authView.failed(error);
    return false;
  }
}

async function start() {
  setState("loading");
  byId("splash-spinner").hidden = false;
  byId("splash-retry").hidden = true;
  say(byId("splash-error"), "");
  byId("splash-text").textContent = "Opening your notes…";
  try {
    await loadConfig();
    if (signin.isCallback()) {
      if (!(await finishSignIn())) {
        setState("signed-out");
        render();
      }
      return; // Signed in: onSessionChange has shown the notes.
    }
    const signedOut = signin.takeSignOutReturn();
    const restored = await session.restore();
    if (!restored) {
      setState("signed-out");
      if (signedOut) authView.notice("logout");
      render();
    }
    // Restored: onSessionChange has shown the notes.
  } catch (error) {
    setState("offline");
    byId("splash-spinner").hidden = true;
    byId("splash-text").textContent = "Your notes are out of reach for a moment.";
    say(byId("splash-error"), describe(error, "open your notes") || "");
    byId("splash-retry").hidden = false;
    byId("splash-retry").focus();
  }
}

// Coming back to the tab: a cheap check that the session still exists (GET /me needs no
// database), so a device that was logged out elsewhere shows the login form at once rather than
// at its next click. At most every 15 s; an expired access token is simply renewed.
const RECHECK_MS = 15000;
let lastCheck = 0;
function recheck() {
  if (document.visibilityState !== "visible" || !session.signedIn()) return;
  if (Date.now() - lastCheck < RECHECK_MS) return;
  lastCheck = Date.now();
  session.authorized("/me").catch(() => {}); // an ended session already went to the login form
}

session.onChange(onSessionChange);
document.addEventListener("visibilitychange", recheck);
authView.wire();
notes.wire();
account.wire();
byId("logout").addEventListener("click", logOut);
byId("splash-retry").addEventListener("click", start);
window.addEventListener("hashchange", () => render());
start();
