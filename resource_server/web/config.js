// Where the auth server is and which client the page is: /web-config.json, served by the
// resource server from its own settings and the auth server's metadata.

export const config = {
  issuer: "",
  token_endpoint: "",
  revocation_endpoint: "",
  client_id: "web-page",
  scope: "notes:read notes:write",
};

/** The auth server's URL for `path` ("/sessions"), under the issuer (which may have a path). */
export const authUrl = (path) => `${config.issuer.replace(/\/$/, "")}${path}`;

export async function loadConfig() {
  const response = await fetch("/web-config.json", { cache: "no-cache" });
  if (!response.ok) throw new Error(`/web-config.json: HTTP ${response.status}`);
  Object.assign(config, await response.json());
}
