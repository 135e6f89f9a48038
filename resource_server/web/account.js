// The account: who is logged in, every session (device, address, last used, this device; end
// one or all), and changing the password (which ends the other sessions).

import { authUrl } from "./config.js";
import { describe, expectOk, HttpError, sentence, waitFor } from "./http.js";
import * as session from "./session.js";
import { ago, busy, byId, clearErrors, day, device, fieldError, fromTemplate, longDate, say, toast } from "./ui.js";

let sessions = [];
let generation = 0;

async function api(path, init = {}) {
  const headers = new Headers(init.headers || {});
  if (init.body) headers.set("Content-Type", "application/json");
  return expectOk(await session.authorized(authUrl(path), { ...init, headers }));
}

/** The logged-in user, from the auth server; shared with the header. */
let me = null;
export async function whoAmI() {
  const sub = session.claims() && session.claims().sub;
  if (me && me.id === sub) return me;
  me = await api("/users/me");
  return me;
}

function initial(name) {
  return (name || "?").trim().charAt(0).toUpperCase() || "?";
}

export function avatar(element, user) {
  element.textContent = initial(user.username);
}

function renderProfile(user) {
  avatar(byId("profile-avatar"), user);
  byId("profile-username").textContent = user.username;
  byId("profile-email").textContent = user.email;
  const since = byId("profile-since");
  const joinedToday = Date.now() - Date.parse(user.created_at) < 86400 * 1000;
  since.textContent = joinedToday ? "Joined today" : `Member since ${day(user.created_at)}`;
  since.title = longDate(user.created_at);
  byId("profile-admin").hidden = !user.is_admin;
  byId("password-username").value = user.username; // for password managers
}

const CLIENTS = { "web-page": "this web page", web: "the API client “web”" };
const clientName = (id) => CLIENTS[id] || `the app “${id}”`;

/**
 * One row per place the person is signed in: each browser session (a sign-in on notes-auth's
 * page, with the apps signed in through it: ending it ends them), and each client session that
 * came through no browser (the password grant of curl and API clients).
 */
function rows(list) {
  const browsers = new Map(list.filter((item) => item.kind === "browser").map((item) => [item.id, { ...item, apps: [] }]));
  const result = [...browsers.values()];
  for (const item of list) {
    if (item.kind === "browser") continue;
    const parent = item.parent_id && browsers.get(item.parent_id);
    if (parent) {
      parent.apps.push(item.client_id);
      parent.current = parent.current || item.current;
      parent.last_used_at = Date.parse(item.last_used_at) > Date.parse(parent.last_used_at) ? item.last_used_at : parent.last_used_at;
    } else {
      result.push({ ...item, apps: null });
    }
  }
  return result;
}

function renderSessions() {
  const listElement = byId("sessions");
  listElement.replaceChildren();
  const ordered = rows(sessions).sort(
    (a, b) => Number(b.current) - Number(a.current) || Date.parse(b.last_used_at) - Date.parse(a.last_used_at),
  );
  for (const item of ordered) {
    const row = fromTemplate("session-template");
    row.dataset.id = item.id;
    const name = device(item.user_agent);
    const phone = /iPhone|iPod|Android.*Mobile|Mobile Safari/.test(item.user_agent || "");
    row.querySelector(".session-icon.computer").hidden = phone;
    row.querySelector(".session-icon.phone").hidden = !phone;
    row.querySelector(".session-name").textContent = name;
    row.querySelector(".session-name").title = item.user_agent || "";
    row.querySelector(".this-device").hidden = !item.current;
    row.classList.toggle("current", item.current);
    row.querySelector(".session-where").textContent = item.ip ? `${item.ip} · ` : "Unknown address · ";
    const used = row.querySelector(".session-used");
    used.textContent = item.current ? "active now" : `last used ${ago(item.last_used_at)}`;
    used.title = longDate(item.last_used_at);
    const client = row.querySelector(".session-client");
    if (item.apps) {
      const apps = [...new Set(item.apps)].map(clientName);
      client.textContent = `Signed in ${ago(item.created_at)} on notes-auth${apps.length ? `, used by ${apps.join(", ")}` : ""}`;
    } else {
      client.textContent = `Logged in ${ago(item.created_at)} with ${clientName(item.client_id)}`;
    }
    client.title = longDate(item.created_at);
    const button = row.querySelector("[data-action=end]");
    button.textContent = item.current ? "Log out" : "End session";
    button.setAttribute("aria-label", item.current ? "Log out on this device" : `End the session on ${name}, ${item.ip || "unknown address"}`);
    button.addEventListener("click", () => endSession(item, button));
    listElement.append(row);
  }
  listElement.setAttribute("aria-busy", "false");
}

async function load() {
  const mine = generation;
  say(byId("sessions-error"), "");
  byId("sessions").setAttribute("aria-busy", "true");
  try {
    const [user, list] = await Promise.all([whoAmI(), api("/sessions")]);
    if (mine !== generation) return;
    renderProfile(user);
    sessions = list;
    renderSessions();
  } catch (error) {
    if (mine !== generation) return;
    const message = describe(error, "load your account");
    if (message) say(byId("sessions-error"), message);
  }
}

async function endSession(item, button) {
  if (item.current) {
    byId("logout").click(); // the header's log out: this page's session and the sign-in behind it
    return;
  }
  busy(button, true, "Ending…");
  try {
    await api(`/sessions/${encodeURIComponent(item.id)}`, { method: "DELETE" });
    sessions = sessions.filter((other) => other.id !== item.id && other.parent_id !== item.id);
    renderSessions();
    toast(`Ended the session on ${device(item.user_agent)}.`);
  } catch (error) {
    busy(button, false);
    if (error instanceof HttpError && error.status === 404) {
      sessions = sessions.filter((other) => other.id !== item.id);
      renderSessions();
      return;
    }
    const message = describe(error, "end that session");
    if (message) say(byId("sessions-error"), message);
  }
}

function everywhere(open) {
  byId("everywhere-confirm").hidden = !open;
  byId("logout-everywhere").hidden = open;
  (open ? byId("everywhere-yes") : byId("logout-everywhere")).focus();
}

async function logOutEverywhere() {
  const button = byId("everywhere-yes");
  busy(button, true, "Logging out everywhere…");
  try {
    await session.logOutEverywhere();
  } catch (error) {
    const message = describe(error, "log out everywhere");
    if (message) say(byId("sessions-error"), message);
  } finally {
    busy(button, false);
  }
}

async function changePassword(event) {
  event.preventDefault();
  const form = byId("password-form");
  clearErrors(form);
  say(byId("password-done"), "");
  const current = form.elements.current_password;
  const next = form.elements.new_password;
  if (!current.value) fieldError(current, "Enter your current password.");
  if (!next.value) fieldError(next, "Choose a new password.");
  const invalid = form.querySelector("[aria-invalid]");
  if (invalid) return invalid.focus();

  const button = form.querySelector("button[type=submit]");
  busy(button, true, "Changing…");
  const others = rows(sessions).filter((item) => !item.current).length;
  try {
    await api("/users/me/password", {
      method: "POST",
      body: JSON.stringify({ current_password: current.value, new_password: next.value }),
    });
    form.reset();
    byId("password-username").value = me ? me.username : "";
    const ended = others === 0 ? "You had no other sessions." : others === 1 ? "Your 1 other session was logged out." : `Your ${others} other sessions were logged out.`;
    say(byId("password-done"), `Your password was changed. ${ended} This device stays logged in.`, "success");
    load();
  } catch (error) {
    if (error instanceof HttpError && error.status === 403) {
      fieldError(current, "That's not your current password.");
      current.value = "";
      current.focus();
    } else if (error instanceof HttpError && error.status === 422) {
      const detail = error.data.detail && error.data.detail !== "The request is not valid." ? error.data.detail : "Choose a longer password.";
      fieldError(next, sentence(detail));
      next.focus();
    } else if (error instanceof HttpError && error.status === 429) {
      say(byId("password-error"), `Too many wrong passwords. Try again ${waitFor(error.retryAfter)}.`);
    } else {
      const message = describe(error, "change your password");
      if (message) say(byId("password-error"), message);
    }
  } finally {
    busy(button, false);
  }
}

export function show() {
  load();
}

export function reset() {
  generation += 1;
  me = null;
  sessions = [];
  byId("sessions").replaceChildren();
  byId("everywhere-confirm").hidden = true;
  byId("logout-everywhere").hidden = false;
  const form = byId("password-form");
  form.reset();
  clearErrors(form);
  say(byId("password-done"), "");
  say(byId("sessions-error"), "");
}

export function wire() {
  byId("logout-everywhere").addEventListener("click", () => everywhere(true));
  byId("everywhere-no").addEventListener("click", () => everywhere(false));
  byId("everywhere-yes").addEventListener("click", logOutEverywhere);
  byId("everywhere-confirm").addEventListener("keydown", (event) => {
    if (event.key === "Escape") everywhere(false);
  });
  byId("password-form").addEventListener("submit", changePassword);
}
