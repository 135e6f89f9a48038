"""OpenID Connect: the id_token, userinfo claims and the discovery document (OIDC Core 1.0,
Discovery 1.0). Routes live in auth_server/api and auth_server/web."""
