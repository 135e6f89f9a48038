// Logged out: the login and sign-up forms, and what they say when something goes wrong.

import { authUrl } from "./config.js";
import { expectOk, HttpError, send, sentence, ServerUnreachable, waitFor } from "./http.js";
import * as session from "./session.js";
import { busy, byId, clearErrors, fieldError, say } from "./ui.js";

const login = () => byId("login-form");
const signup = () => byId("signup-form");

const NOTICES = {
  ended: ["Your session has ended. That happens when you log out everywhere or change your password on another device, or when a session gets too old. Log in again to continue.", "warning"],
  everywhere: ["You logged out everywhere. Every device, this one included, has to log in again.", "info"],
  "logout-elsewhere": ["You logged out in another tab.", "info"],
  logout: ["You're logged out. See you soon.", "info"],
  "logout-unconfirmed": ["You're logged out on this page, but the server couldn't be reached to end the session. Log in and out again when you're back online.", "warning"],
};

/** Say why the login form is showing (a session that ended, a logout), or nothing. */
export function notice(reason) {
  const [message, kind] = NOTICES[reason] || ["", "info"];
  say(byId("auth-notice"), message, kind);
}

/** Which form: "login" or "signup". */
export function showForm(which) {
  login().hidden = which !== "login";
  signup().hidden = which !== "signup";
  for (const link of document.querySelectorAll(".switch a")) {
    if (link.dataset.route === which) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

export function focusForm(which) {
  const form = which === "signup" ? signup() : login();
  const empty = [...form.querySelectorAll("input:not([hidden])")].find((input) => !input.value);
  (empty || form.querySelector("input")).focus();
}

/** Words for a refused login or sign-up that is not about one field. */
function problem(error, doing) {
  if (error instanceof ServerUnreachable) return "We can't reach the server. Check your connection and try again.";
  if (error instanceof HttpError) {
    if (error.status === 503) return `The service is briefly unavailable. Try again ${waitFor(error.retryAfter)}.`;
    if (error.status === 429) return null; // each form words its own
    return `Couldn't ${doing}: the server answered with an error (HTTP ${error.status}). Try again in a moment.`;
  }
  console.error(error);
  return `Couldn't ${doing}: something unexpected went wrong. Reload the page and try again.`;
}

async function onLogin(event) {
  event.preventDefault();
  const form = login();
  clearErrors(form);
  say(byId("auth-notice"), "");
  const username = form.elements.username;
  const password = form.elements.password;
  if (!username.value.trim()) fieldError(username, "Enter your username or email.");
  if (!password.value) fieldError(password, "Enter your password.");
  const invalid = form.querySelector("[aria-invalid]");
  if (invalid) return invalid.focus();

  const button = form.querySelector("button[type=submit]");
  busy(button, true, "Logging in…");
  try {
    await session.logIn(username.value.trim(), password.value);
    form.reset();
  } catch (error) {
    const alert = byId("login-error");
    if (error instanceof HttpError && error.status === 400 && error.code === "invalid_grant") {
      // The same words for an unknown user as for a wrong password (as the server answers).
      say(alert, "That username or password is wrong. Check them and try again.");
      password.value = "";
      password.focus();
    } else if (error instanceof HttpError && error.status === 429) {
      say(alert, `Too many failed attempts, so logging in as “${username.value.trim()}” is paused for now. Try again ${waitFor(error.retryAfter)}.`);
    } else {
      say(alert, problem(error, "log you in"));
    }
  } finally {
    busy(button, false);
  }
}

const SIGNUP_FIELDS = ["username", "email", "password"];

/** The field a 422 is about: from pydantic's `loc`, or the policy's "the password must …". */
function fieldOf(text) {
  const match = /^the (username|email|password)/i.exec(String(text || "").trim());
  return match ? match[1].toLowerCase() : null;
}

function validationMessage(field, error) {
  if (error.type === "missing" || error.type === "string_too_short") {
    return { username: "Choose a username.", email: "Enter your email address.", password: "Choose a password." }[field];
  }
  if (error.type === "string_too_long") return `The ${field} is too long.`;
  return sentence(error.msg);
}

async function onSignup(event) {
  event.preventDefault();
  const form = signup();
  clearErrors(form);
  say(byId("auth-notice"), "");
  const fields = Object.fromEntries(SIGNUP_FIELDS.map((name) => [name, form.elements[name]]));
  if (!fields.username.value.trim()) fieldError(fields.username, "Choose a username.");
  if (!fields.email.value.trim()) fieldError(fields.email, "Enter your email address.");
  if (!fields.password.value) fieldError(fields.password, "Choose a password.");
  const invalid = form.querySelector("[aria-invalid]");
  if (invalid) return invalid.focus();

  const button = form.querySelector("button[type=submit]");
  const alert = byId("signup-error");
  busy(button, true, "Creating your account…");
  const username = fields.username.value.trim();
  const password = fields.password.value;
  try {
    const response = await send(authUrl("/users"), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username, email: fields.email.value.trim(), password }),
    });
    await expectOk(response);
  } catch (error) {
    busy(button, false);
    if (error instanceof HttpError && error.status === 422) {
      const errors = Array.isArray(error.data.errors) ? error.data.errors : [];
      for (const item of errors) {
        const field = Array.isArray(item.loc) ? item.loc[item.loc.length - 1] : null;
        if (fields[field]) fieldError(fields[field], validationMessage(field, item));
      }
      const field = fieldOf(error.data.detail);
      if (field) fieldError(fields[field], sentence(error.data.detail));
      if (!form.querySelector("[aria-invalid]")) say(alert, sentence(error.data.detail || "Check the form and try again."));
      (form.querySelector("[aria-invalid]") || fields.username).focus();
    } else if (error instanceof HttpError && error.status === 409) {
      fieldError(fields.username, "This username or email is already registered. Log in instead, or choose another.");
      fields.username.focus();
    } else if (error instanceof HttpError && error.status === 403) {
      say(alert, "Sign-up is closed on this server. Ask its administrator for an account.");
    } else if (error instanceof HttpError && error.status === 429) {
      say(alert, `Too many new accounts from this network. Try again ${waitFor(error.retryAfter)}.`);
    } else {
      say(alert, problem(error, "create your account"));
    }
    return;
  }
  // The account exists: log in with it straight away.
  busy(button, false);
  busy(button, true, "Logging in…");
  try {
    await session.logIn(username, password);
    form.reset();
  } catch (error) {
    say(alert, `Your account was created, but logging in failed. ${problem(error, "log you in") || "Try logging in."}`);
  } finally {
    busy(button, false);
  }
}

export function wire() {
  login().addEventListener("submit", onLogin);
  signup().addEventListener("submit", onSignup);
}
