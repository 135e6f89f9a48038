// The notes web page: logs in with the password grant, keeps the session across reloads,
// lets the resource server refresh an expired access token transparently, and logs out.
"use strict";

const store = {
  get tokens() { return JSON.parse(localStorage.getItem("notes.tokens") || "null"); },
  set tokens(value) {
    if (value) localStorage.setItem("notes.tokens", JSON.stringify(value));
    else localStorage.removeItem("notes.tokens");
  },
};

let config = null;
let nextCursor = null;
const $ = (id) => document.getElementById(id);

async function loadConfig() {
  const response = await fetch("/web-config.json");
  config = await response.json();
}

function show(loggedIn) {
  $("login-view").hidden = loggedIn;
  $("notes-view").hidden = !loggedIn;
  $("whoami").hidden = !loggedIn;
  $("username").textContent = loggedIn ? (store.tokens.username || "") : "";
}

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  const form = new FormData(event.target);
  const body = new URLSearchParams({
    grant_type: "password", client_id: "web",
    username: form.get("username"), password: form.get("password"),
  });
  const response = await fetch(config.token_endpoint, { method: "POST", body });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    $("login-error").textContent =
      response.status === 429 ? "Too many attempts. Try again later." : "Wrong username or password.";
    return;
  }
  store.tokens = { access: data.access_token, refresh: data.refresh_token, username: form.get("username") };
  event.target.reset();
  show(true);
  await refreshList();
}

// Calls the notes API. On an expired access token the request is repeated with the refresh
// token, and the resource server answers with the new pair in New-* headers.
async function api(path, options = {}, retried = false) {
  const tokens = store.tokens;
  const headers = { ...(options.headers || {}), Authorization: `Bearer ${tokens.access}` };
  if (retried) headers["Refresh-Token"] = tokens.refresh;
  const response = await fetch(path, { ...options, headers });
  const newAccess = response.headers.get("New-Access-Token");
  if (newAccess) {
    store.tokens = { ...tokens, access: newAccess, refresh: response.headers.get("New-Refresh-Token") };
  }
  if (response.status === 401 && !retried) {
    const challenge = response.headers.get("WWW-Authenticate") || "";
    if (/expired/i.test(challenge)) return api(path, options, true);
  }
  if (response.status === 401) {
    store.tokens = null;
    show(false);
    throw new Error("Your session has ended. Please log in again.");
  }
  return response;
}

function renderNote(note) {
  const item = document.createElement("li");
  const title = document.createElement("h3");
  title.textContent = note.title;
  const body = document.createElement("p");
  body.textContent = note.body;
  const remove = document.createElement("button");
  remove.className = "link";
  remove.type = "button";
  remove.textContent = "Delete";
  remove.addEventListener("click", async () => {
    const response = await api(`/notes/${encodeURIComponent(note.id)}`, { method: "DELETE" });
    if (response.ok) item.remove();
  });
  item.append(title, body, remove);
  return item;
}

async function refreshList(append = false) {
  $("notes-error").textContent = "";
  try {
    const query = append && nextCursor ? `?cursor=${encodeURIComponent(nextCursor)}` : "";
    const response = await api(`/notes${query}`);
    const page = await response.json();
    if (!append) $("notes").replaceChildren();
    page.items.forEach((note) => $("notes").append(renderNote(note)));
    nextCursor = page.next_cursor;
    $("more").hidden = !nextCursor;
  } catch (error) {
    $("login-error").textContent = error.message;
  }
}

async function addNote(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  try {
    const response = await api("/notes", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ title: form.get("title"), body: form.get("body") || "" }),
    });
    if (!response.ok) {
      const problem = await response.json().catch(() => ({}));
      $("notes-error").textContent = problem.detail || problem.title || "Could not save the note.";
      return;
    }
    event.target.reset();
    $("notes").prepend(renderNote(await response.json()));
  } catch (error) {
    $("login-error").textContent = error.message;
  }
}

async function logout() {
  const tokens = store.tokens;
  store.tokens = null;
  show(false);
  if (tokens && tokens.refresh) {
    // RFC 7009: revoking the refresh token ends the whole session, everywhere it is used.
    await fetch(config.revocation_endpoint, {
      method: "POST", body: new URLSearchParams({ token: tokens.refresh, client_id: "web" }),
    }).catch(() => {});
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  await loadConfig();
  $("login-form").addEventListener("submit", login);
  $("note-form").addEventListener("submit", addNote);
  $("logout").addEventListener("click", logout);
  $("more").addEventListener("click", () => refreshList(true));
  show(Boolean(store.tokens));
  if (store.tokens) await refreshList();
});
