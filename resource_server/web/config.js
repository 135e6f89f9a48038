// Where the auth server is and which client the page is: /web-config.json, served by the
// resource server from its own settings and the auth server's metadata.

export const config = {
  issuer: "",
  authorization_endpoint: "",
  token_endpoint: "",
  revocation_endpoint: "",
  end_session_endpoint: "",
  client_id: "web-page",
  scope: "openid profile email notes:read notes:write",
};

/** The auth server's URL for `path` ("/sessions"), under the issuer (which may have a path). */
export const authUrl = (path) => `${config.issuer.replace(/\/$/, "")}${path}`;

/** Where the auth server sends the browser back with a code: registered for every page origin. */
export const redirectUri = () => `${location.origin}/callback`;

export async function loadConfig() {
  const response = await fetch("/web-config.json", { cache: "no-cache" });
  if (!response.ok) throw new Error(`/web-config.json: HTTP ${response.status}`);
  Object.assign(config, await response.json());
}
