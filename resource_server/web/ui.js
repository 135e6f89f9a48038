// Small DOM helpers shared by the views: templates, field errors, busy buttons, toasts, and the
// words for times and devices.

export const byId = (id) => document.getElementById(id);

/** A fresh copy of the first element of <template id=...>. */
export function fromTemplate(id) {
  return byId(id).content.firstElementChild.cloneNode(true);
}

/** Show `message` under a field (its `<p id="<field id>-error">`), or clear it. */
export function fieldError(input, message) {
  const slot = byId(`${input.id}-error`);
  if (message) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
  if (slot) slot.textContent = message || "";
}

export function clearErrors(form) {
  for (const input of form.querySelectorAll("[aria-invalid]")) fieldError(input, "");
  for (const slot of form.querySelectorAll(".field-error, .form-error")) slot.textContent = "";
}

/** Put a message in a role=alert (or role=status) element; `kind` picks its colours. */
export function say(element, message, kind = "error") {
  element.textContent = message || "";
  element.dataset.kind = kind;
}

/** Disable a button while its action runs, with a label that says so. */
export function busy(button, isBusy, label) {
  if (isBusy) {
    button.dataset.label = button.textContent;
    button.textContent = label;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
  } else {
    if (button.dataset.label) button.textContent = button.dataset.label;
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

/**
 * A toast in the polite live region. `action` is an optional {label, run}. The toast closes
 * after `timeout` ms (paused while the pointer or the focus is on it), with its close button,
 * or when its action runs; `onClose(how)` learns which: "timeout", "dismiss", "action", "replaced".
 */
export function toast(message, { action = null, timeout = 5000, onClose = () => {} } = {}) {
  const element = fromTemplate("toast-template");
  element.querySelector(".toast-text").textContent = message;
  const actionButton = element.querySelector(".toast-action");
  let closed = false;
  let timer = null;
  const close = (how) => {
    if (closed) return;
    closed = true;
    clearTimeout(timer);
    const hadFocus = element.contains(document.activeElement);
    element.remove();
    if (hadFocus) byId("main").focus();
    onClose(how);
  };
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => close("timeout"), timeout);
  };
  if (action) {
    actionButton.textContent = action.label;
    actionButton.addEventListener("click", () => {
      close("action");
      action.run();
    });
  } else {
    actionButton.remove();
  }
  element.querySelector(".toast-close").addEventListener("click", () => close("dismiss"));
  element.addEventListener("mouseenter", () => clearTimeout(timer));
  element.addEventListener("mouseleave", arm);
  element.addEventListener("focusin", () => clearTimeout(timer));
  element.addEventListener("focusout", (event) => {
    if (!element.contains(event.relatedTarget)) arm();
  });
  byId("toasts").append(element);
  arm();
  return { close, element };
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const fullDate = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const dayOnly = new Intl.DateTimeFormat(undefined, { dateStyle: "long" });

/** "just now", "5 minutes ago", "yesterday", then a date. */
export function ago(iso) {
  const seconds = Math.round((Date.parse(iso) - Date.now()) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 45) return "just now";
  if (abs < 3600) return relative.format(Math.round(seconds / 60), "minute");
  if (abs < 86400) return relative.format(Math.round(seconds / 3600), "hour");
  if (abs < 7 * 86400) return relative.format(Math.round(seconds / 86400), "day");
  return fullDate.format(new Date(iso));
}

export const longDate = (iso) => fullDate.format(new Date(iso));
export const day = (iso) => dayOnly.format(new Date(iso));

/** <time datetime=... title=...>5 minutes ago</time> */
export function setTime(element, iso, prefix = "") {
  element.dateTime = iso;
  element.title = longDate(iso);
  element.textContent = `${prefix}${ago(iso)}`;
}

/** "Chrome on Linux", "Firefox on Windows", "curl", from a User-Agent string. */
export function device(userAgent) {
  const ua = userAgent || "";
  if (!ua) return "Unknown device";
  const tools = [
    [/^curl\//i, "curl"],
    [/python-httpx/i, "Python (httpx)"],
    [/python-requests/i, "Python (requests)"],
    [/^Wget/i, "Wget"],
  ];
  for (const [pattern, name] of tools) if (pattern.test(ua)) return name;
  const browser =
    (/Edg\//.test(ua) && "Edge") ||
    (/OPR\//.test(ua) && "Opera") ||
    (/HeadlessChrome\//.test(ua) && "Headless Chrome") ||
    ((/Chrome\//.test(ua) || /CriOS\//.test(ua)) && "Chrome") ||
    ((/Firefox\//.test(ua) || /FxiOS\//.test(ua)) && "Firefox") ||
    (/Safari\//.test(ua) && "Safari") ||
    null;
  const system =
    (/iPhone|iPad|iPod/.test(ua) && "iOS") ||
    (/Android/.test(ua) && "Android") ||
    (/CrOS/.test(ua) && "ChromeOS") ||
    (/Windows/.test(ua) && "Windows") ||
    (/Mac OS X|Macintosh/.test(ua) && "macOS") ||
    (/Linux|X11/.test(ua) && "Linux") ||
    null;
  if (browser && system) return `${browser} on ${system}`;
  if (browser || system) return browser || system;
  return ua.length > 40 ? `${ua.slice(0, 40)}…` : ua;
}
