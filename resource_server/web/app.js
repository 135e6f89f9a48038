// The notes web page: the entry module. It restores the session (a refresh through the auth
// server's HttpOnly cookie), then shows the notes or the login form, and switches between the
// views when the session or the address (#/notes, #/account, #/login, #/signup) changes.
//
// Modules: session.js (tokens and tabs), http.js (errors and their words), auth-view.js (log in,
// sign up), notes.js, account.js, ui.js (DOM helpers), config.js (/web-config.json).

import * as account from "./account.js";
import * as authView from "./auth-view.js";
import { loadConfig } from "./config.js";
import { describe } from "./http.js";
import * as notes from "./notes.js";
import * as session from "./session.js";
import { busy, byId, say } from "./ui.js";

const SIGNED_IN_ROUTES = ["notes", "account"];
const SIGNED_OUT_ROUTES = ["login", "signup"];
let wanted = null; // where a visitor was going before the login form

function route() {
  const name = location.hash.replace(/^#\/?/, "").split(/[/?]/)[0];
  return name || null;
}

function go(name) {
  if (route() !== name) history.replaceState(null, "", `#/${name}`);
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
      name = wanted && SIGNED_IN_ROUTES.includes(wanted) ? wanted : "notes";
      wanted = null;
      go(name);
    }
  } else if (!SIGNED_OUT_ROUTES.includes(name)) {
    if (SIGNED_IN_ROUTES.includes(name)) wanted = name;
    name = "login";
    go(name);
  }
  byId("auth-view").hidden = state !== "signed-out";
  byId("notes-view").hidden = name !== "notes";
  byId("account-view").hidden = name !== "account";
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.route === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = { notes: "Notes", account: "Account · Notes", login: "Log in · Notes", signup: "Sign up · Notes" }[name];
  if (state === "signed-out") {
    authView.showForm(name);
    if (focus) authView.focusForm(name);
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
    const told = await session.logOut("logout");
    if (!told) authView.notice("logout-unconfirmed");
  } finally {
    busy(button, false);
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
    const restored = await session.restore();
    if (!restored) {
      setState("signed-out");
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
