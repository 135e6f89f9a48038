"""The hosted pages: sign-in, sign-up, consent, the authorization endpoint and the end-session
endpoint. Plain HTML forms that POST and work with JavaScript off (script only improves them),
rendered from autoescaped Jinja2 templates, each with a CSRF token and a strict CSP."""
