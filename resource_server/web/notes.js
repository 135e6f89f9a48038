// The notes: a list with "load more", a composer, editing in place, and deleting with a
// confirmation and an undo. Every change shows at once and is rolled back if the server refuses.

import { describe, expectOk, HttpError } from "./http.js";
import * as session from "./session.js";
import { busy, byId, fieldError, fromTemplate, say, setTime, toast } from "./ui.js";

const PAGE_SIZE = 20;
const UNDO_MS = 6000;

const list = () => byId("notes");
/** id -> {note, card}; the cards on screen. */
const shown = new Map();
let nextCursor = null;
let loaded = false;
let generation = 0; // bumped on reset: answers for an older list are ignored
/** The delete waiting for its undo window: {note, card, before, toast, timer}. */
let pendingDelete = null;
let tempIds = 0;

async function api(path, init = {}) {
  const headers = new Headers(init.headers || {});
  if (init.body) headers.set("Content-Type", "application/json");
  const response = await session.authorized(path, { ...init, headers });
  return expectOk(response);
}

function updateEmpty() {
  const empty = loaded && list().children.length === 0 && !nextCursor;
  byId("notes-empty").hidden = !empty;
}

function render(card, note) {
  card.querySelector(".note-title").textContent = note.title;
  const body = card.querySelector(".note-body");
  body.textContent = note.body;
  body.hidden = !note.body;
  const edited = note.updated_at && note.updated_at !== note.created_at;
  setTime(card.querySelector(".note-time"), edited ? note.updated_at : note.created_at, edited ? "Edited " : "");
  for (const button of card.querySelectorAll(".note-actions button")) {
    button.setAttribute("aria-label", `${button.textContent} “${note.title}”`);
  }
}

function setState(card, text, kind = "") {
  const state = card.querySelector(".note-state");
  state.textContent = text;
  state.dataset.kind = kind;
  card.classList.toggle("pending", kind === "pending");
  for (const button of card.querySelectorAll(".note-actions button")) button.disabled = kind === "pending";
}

function makeCard(note) {
  const card = fromTemplate("note-template");
  card.dataset.id = note.id;
  const key = `n${++tempIds}`;
  const form = card.querySelector(".note-edit");
  for (const name of ["title", "body"]) {
    const input = form.elements[name];
    input.id = `edit-${name}-${key}`;
    form.querySelector(`label[data-for=${name}]`).htmlFor = input.id;
  }
  card.querySelector(".confirm-question").id = `confirm-${key}`;
  card.querySelector(".note-confirm").setAttribute("aria-labelledby", `confirm-${key}`);
  card.addEventListener("click", (event) => onCardClick(event, card));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    saveEdit(card);
  });
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeEditor(card, true);
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) saveEdit(card);
  });
  card.querySelector(".note-confirm").addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeConfirm(card, true);
  });
  render(card, note);
  return card;
}

function entry(card) {
  return shown.get(card.dataset.id);
}

function onCardClick(event, card) {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const action = button.dataset.action;
  if (action === "edit") openEditor(card);
  else if (action === "cancel-edit") closeEditor(card, true);
  else if (action === "delete") openConfirm(card);
  else if (action === "cancel-delete") closeConfirm(card, true);
  else if (action === "confirm-delete") confirmDelete(card);
}

// --- Listing -------------------------------------------------------------------------------

function showLoading(isLoading) {
  byId("notes-loading").hidden = !isLoading;
  list().setAttribute("aria-busy", String(isLoading));
  byId("notes-status").textContent = isLoading ? "Loading your notes…" : "";
}

function append(items) {
  for (const note of items) {
    if (shown.has(note.id)) continue;
    const card = makeCard(note);
    shown.set(note.id, { note, card });
    list().append(card);
  }
}

async function loadFirstPage() {
  const mine = generation;
  say(byId("notes-error"), "");
  byId("notes-retry").hidden = true;
  showLoading(true);
  try {
    const page = await api(`/notes?limit=${PAGE_SIZE}`);
    if (mine !== generation) return;
    list().replaceChildren();
    shown.clear();
    append(page.items);
    nextCursor = page.next_cursor;
    loaded = true;
  } catch (error) {
    if (mine !== generation) return;
    const message = describe(error, "load your notes");
    if (message) {
      say(byId("notes-error"), message);
      byId("notes-retry").hidden = false;
    }
  } finally {
    if (mine === generation) {
      showLoading(false);
      byId("more").hidden = !nextCursor;
      updateEmpty();
    }
  }
}

async function loadMore() {
  const mine = generation;
  const button = byId("more");
  busy(button, true, "Loading…");
  say(byId("notes-error"), "");
  try {
    const page = await api(`/notes?limit=${PAGE_SIZE}&cursor=${encodeURIComponent(nextCursor)}`);
    if (mine !== generation) return;
    append(page.items);
    nextCursor = page.next_cursor;
    byId("notes-status").textContent = page.items.length ? `${page.items.length} more notes loaded.` : "";
  } catch (error) {
    if (mine === generation) say(byId("notes-error"), describe(error, "load more notes"));
  } finally {
    busy(button, false);
    button.hidden = !nextCursor;
    updateEmpty();
  }
}

// --- Creating ------------------------------------------------------------------------------

async function create(event) {
  event.preventDefault();
  const form = byId("note-form");
  const title = form.elements.title;
  const body = form.elements.body;
  fieldError(title, "");
  say(byId("note-form-error"), "");
  if (!title.value.trim()) {
    fieldError(title, "Give your note a title.");
    title.focus();
    return;
  }
  const draft = { title: title.value.trim(), body: body.value };
  const now = new Date().toISOString();
  const temp = { id: `pending-${++tempIds}`, ...draft, created_at: now, updated_at: now };
  const card = makeCard(temp);
  shown.set(temp.id, { note: temp, card });
  setState(card, "Saving…", "pending");
  list().prepend(card);
  loaded = true;
  updateEmpty();
  form.reset();
  title.focus();
  const mine = generation;
  try {
    const note = await api("/notes", { method: "POST", body: JSON.stringify(draft) });
    if (mine !== generation) return;
    shown.delete(temp.id);
    card.dataset.id = note.id;
    shown.set(note.id, { note, card });
    render(card, note);
    setState(card, "");
  } catch (error) {
    if (mine !== generation) return;
    // Roll back: the card goes, the words come back into the composer.
    shown.delete(temp.id);
    card.remove();
    updateEmpty();
    if (!title.value && !body.value) {
      title.value = draft.title;
      body.value = draft.body;
    }
    const message = describe(error, "save your note");
    if (message) say(byId("note-form-error"), message);
  }
}

// --- Editing -------------------------------------------------------------------------------

function openEditor(card) {
  const { note } = entry(card);
  const form = card.querySelector(".note-edit");
  form.elements.title.value = note.title;
  form.elements.body.value = note.body;
  say(form.querySelector(".edit-error"), "");
  card.querySelector(".note-read").hidden = true;
  form.hidden = false;
  card.classList.add("editing");
  form.elements.title.focus();
}

function closeEditor(card, refocus) {
  card.querySelector(".note-edit").hidden = true;
  card.querySelector(".note-read").hidden = false;
  card.classList.remove("editing");
  if (refocus) card.querySelector("[data-action=edit]").focus();
}

async function saveEdit(card) {
  const current = entry(card);
  if (!current) return;
  const form = card.querySelector(".note-edit");
  const errorSlot = form.querySelector(".edit-error");
  const title = form.elements.title.value.trim();
  const body = form.elements.body.value;
  if (!title) {
    say(errorSlot, "A note needs a title.");
    form.elements.title.focus();
    return;
  }
  const before = current.note;
  if (title === before.title && body === before.body) return closeEditor(card, true);
  const change = {};
  if (title !== before.title) change.title = title;
  if (body !== before.body) change.body = body;
  // Show the change at once.
  current.note = { ...before, title, body, updated_at: new Date().toISOString() };
  render(card, current.note);
  setState(card, "Saving…", "pending");
  closeEditor(card, true);
  const mine = generation;
  try {
    const note = await api(`/notes/${encodeURIComponent(before.id)}`, { method: "PATCH", body: JSON.stringify(change) });
    if (mine !== generation) return;
    current.note = note;
    render(card, note);
    setState(card, "");
  } catch (error) {
    if (mine !== generation) return;
    if (error instanceof HttpError && error.status === 404) {
      shown.delete(before.id);
      card.remove();
      updateEmpty();
      toast(`“${before.title}” was deleted elsewhere, so your changes couldn't be saved.`);
      return;
    }
    // Roll back to what the server has, and reopen the editor with the words that were typed.
    current.note = before;
    render(card, before);
    setState(card, "");
    const message = describe(error, "save your changes");
    if (!message) return;
    openEditor(card);
    form.elements.title.value = title;
    form.elements.body.value = body;
    say(errorSlot, `${message} The note is unchanged.`);
  }
}

// --- Deleting ------------------------------------------------------------------------------

function openConfirm(card) {
  const confirm = card.querySelector(".note-confirm");
  confirm.querySelector(".confirm-question").textContent = `Delete “${entry(card).note.title}”?`;
  confirm.hidden = false;
  card.classList.add("confirming");
  confirm.querySelector("[data-action=confirm-delete]").focus();
}

function closeConfirm(card, refocus) {
  card.querySelector(".note-confirm").hidden = true;
  card.classList.remove("confirming");
  if (refocus) card.querySelector("[data-action=delete]").focus();
}

function placeBack(card, note) {
  // Newest first, as the server lists them.
  const later = [...list().children].find((other) => {
    const item = entry(other);
    return item && item.note.created_at < note.created_at;
  });
  list().insertBefore(card, later || null);
}

function confirmDelete(card) {
  const current = entry(card);
  if (!current) return;
  if (pendingDelete) commitDelete(pendingDelete); // one undo at a time
  closeConfirm(card, false);
  const neighbour = card.nextElementSibling || card.previousElementSibling;
  card.remove();
  updateEmpty();
  (neighbour ? neighbour.querySelector("[data-action=delete]") : byId("note-title")).focus();
  const pending = { note: current.note, card, toast: null };
  pendingDelete = pending;
  pending.toast = toast(`Deleted “${current.note.title}”.`, {
    timeout: UNDO_MS,
    action: { label: "Undo", run: () => undoDelete(pending) },
    onClose: (how) => how !== "action" && commitDelete(pending),
  });
}

function undoDelete(pending) {
  if (pendingDelete !== pending) return;
  pendingDelete = null;
  placeBack(pending.card, pending.note);
  updateEmpty();
  pending.card.querySelector("[data-action=delete]").focus();
  byId("notes-status").textContent = `“${pending.note.title}” is back.`;
}

async function commitDelete(pending) {
  if (pendingDelete !== pending) return;
  pendingDelete = null;
  pending.toast.close("replaced");
  const mine = generation;
  try {
    await api(`/notes/${encodeURIComponent(pending.note.id)}`, { method: "DELETE" });
    shown.delete(pending.note.id);
  } catch (error) {
    if (mine !== generation) return;
    if (error instanceof HttpError && error.status === 404) {
      shown.delete(pending.note.id);
      return;
    }
    // Roll back: the note was not deleted, so it comes back with the reason.
    placeBack(pending.card, pending.note);
    updateEmpty();
    const message = describe(error, `delete “${pending.note.title}”`);
    if (message) toast(`${message} The note is back.`, { timeout: 8000 });
  }
}

/** Send a delete still waiting for its undo now: the page is logging out or going away. */
export async function flush() {
  if (pendingDelete) await commitDelete(pendingDelete);
}

function flushOnExit() {
  if (!pendingDelete) return;
  const token = session.accessToken();
  if (!token) return;
  // keepalive: the request outlives the page.
  fetch(`/notes/${encodeURIComponent(pendingDelete.note.id)}`, {
    method: "DELETE",
    keepalive: true,
    headers: { Authorization: `Bearer ${token}` },
  }).catch(() => {});
  pendingDelete = null;
}

// --- The view ------------------------------------------------------------------------------

/** Show the notes; the first time after a login, load them. */
export function show() {
  if (!loaded && list().getAttribute("aria-busy") !== "true") loadFirstPage();
}

/** Forget everything shown (logged out, or another user). */
export function reset() {
  generation += 1;
  if (pendingDelete) {
    const { toast: undo } = pendingDelete;
    pendingDelete = null; // discarded: nobody is logged in to delete it
    undo.close("replaced");
  }
  shown.clear();
  list().replaceChildren();
  nextCursor = null;
  loaded = false;
  byId("more").hidden = true;
  byId("notes-empty").hidden = true;
  byId("notes-retry").hidden = true;
  say(byId("notes-error"), "");
  say(byId("note-form-error"), "");
  byId("note-form").reset();
  showLoading(false);
}

export function wire() {
  const form = byId("note-form");
  form.addEventListener("submit", create);
  form.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });
  byId("more").addEventListener("click", loadMore);
  byId("notes-retry").addEventListener("click", loadFirstPage);
  window.addEventListener("pagehide", flushOnExit);
}
