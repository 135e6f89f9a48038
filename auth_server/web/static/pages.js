// The hosted pages work without this script; it only improves them: a form that is being sent
// can't be sent twice (a double click would be a second sign-in attempt), and its button says
// what is happening.
for (const form of document.querySelectorAll("form[method=post]")) {
  form.addEventListener("submit", (event) => {
    if (form.dataset.sending) {
      event.preventDefault();
      return;
    }
    form.dataset.sending = "yes";
    const button = event.submitter;
    if (button) button.setAttribute("aria-busy", "true");
  });
}
// Focus the first field the server marked invalid (a re-shown form), else leave `autofocus`.
const invalid = document.querySelector("[aria-invalid=true]");
if (invalid) invalid.focus();
