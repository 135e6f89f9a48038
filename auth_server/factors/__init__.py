"""Second factors and passkeys (issue 22): TOTP (RFC 6238), recovery codes and WebAuthn
credentials, their stores, the factor throttle and lock, and the services that the hosted pages
and the password grant call. No HTTP here: `api/` and `web/` turn these results into answers.
docs/security/factors.md describes what is stored and how each factor resists replay."""
