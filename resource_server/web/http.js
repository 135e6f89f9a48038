// HTTP for the page: fetch that tells "the server could not be reached" apart from an answer,
// the errors the views understand, and the words they show for them.

/** The request never got an answer: no network, the server down, or a CORS refusal. */
export class ServerUnreachable extends Error {
  constructor() {
    super("We can't reach the server. Check your connection and try again.");
    this.name = "ServerUnreachable";
  }
}

/** The session is over (logged out, revoked, or never there); the page shows the login form. */
export class SessionEnded extends Error {
  constructor(reason) {
    super("Your session has ended. Please log in again.");
    this.name = "SessionEnded";
    this.reason = reason;
  }
}

/** An answer with an error status, with what it said: an RFC 6749 error or an RFC 9457 problem. */
export class HttpError extends Error {
  constructor(response, data) {
    super(`HTTP ${response.status}`);
    this.name = "HttpError";
    this.status = response.status;
    this.data = data || {};
    this.code = typeof this.data.error === "string" ? this.data.error : null;
    this.retryAfter = retryAfterSeconds(response);
  }
}

export async function send(url, init = {}) {
  try {
    return await fetch(url, init);
  } catch (error) {
    if (error && error.name === "AbortError") throw error;
    throw new ServerUnreachable();
  }
}

export async function readJson(response) {
  if (response.status === 204) return {};
  try {
    return await response.json();
  } catch {
    return {};
  }
}

/** The JSON of a successful answer, or an HttpError. */
export async function expectOk(response) {
  const data = await readJson(response);
  if (!response.ok) throw new HttpError(response, data);
  return data;
}

/** Retry-After in seconds (RFC 9110 §10.2.3: a number of seconds or an HTTP date), or null. */
export function retryAfterSeconds(response) {
  const value = response.headers.get("Retry-After");
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const when = Date.parse(value);
  return Number.isNaN(when) ? null : Math.max(0, Math.ceil((when - Date.now()) / 1000));
}

/** "in 15 minutes", "in 40 seconds", "in about 2 hours": how long someone has to wait. */
export function waitFor(seconds) {
  if (seconds === null || seconds === undefined) return "in a little while";
  if (seconds < 60) return seconds <= 1 ? "in a second" : `in ${seconds} seconds`;
  const minutes = Math.ceil(seconds / 60);
  if (minutes < 60) return minutes === 1 ? "in a minute" : `in ${minutes} minutes`;
  const hours = Math.round(minutes / 60);
  return hours === 1 ? "in about an hour" : `in about ${hours} hours`;
}

/** The server's lower-case phrase as a sentence: "the password is short" -> "The password is short." */
export function sentence(text) {
  const trimmed = String(text || "").trim();
  if (!trimmed) return "";
  const first = trimmed[0].toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
}

/**
 * What to tell a person about an error, or null when there is nothing to say here (the session
 * ended: the login form says it). `doing` names the action: "save your note".
 */
export function describe(error, doing) {
  if (error instanceof SessionEnded) return null;
  if (error instanceof ServerUnreachable) return `Couldn't ${doing}: we can't reach the server. Check your connection and try again.`;
  if (error instanceof HttpError) {
    if (error.status === 429) return `Couldn't ${doing}: too many requests. Try again ${waitFor(error.retryAfter)}.`;
    if (error.status === 503) return `Couldn't ${doing}: the service is briefly unavailable. Try again ${waitFor(error.retryAfter)}.`;
    if (error.status === 404) return `Couldn't ${doing}: it no longer exists.`;
    const detail = error.data.detail || error.data.error_description;
    if (detail && error.status < 500 && detail !== "The request is not valid.") return `Couldn't ${doing}: ${sentence(detail).replace(/^./, (c) => c.toLowerCase())}`;
    return `Couldn't ${doing}: the server had a problem (HTTP ${error.status}). Try again in a moment.`;
  }
  console.error(error);
  return `Couldn't ${doing}: something unexpected went wrong. Reload the page and try again.`;
}
