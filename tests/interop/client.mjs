// An independent relying party: npm's openid-client (v6, by the author of the OpenID Connect
// conformance suite's node implementation), driven by tests/interop/test_openid_client.py.
//
// It prints the authorization URL (one JSON line), waits for the browser's redirect back on
// stdin (the test plays the browser: it signs in on the hosted page), then does what a relying
// party does: the code exchange with PKCE and the id_token's nonce, userinfo, a refresh, and the
// end-session URL. Everything it learns is printed as one JSON line.
import * as client from "openid-client";
import { createInterface } from "node:readline";

const [issuer, clientId, redirectUri, postLogoutUri] = process.argv.slice(2);
const lines = createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => lines.once("line", resolve));
const say = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);

try {
  // Discovery (OpenID Connect Discovery 1.0), over plain HTTP on loopback.
  const config = await client.discovery(new URL(issuer), clientId, undefined, client.None(), {
    execute: [client.allowInsecureRequests],
  });
  const verifier = client.randomPKCECodeVerifier();
  const nonce = client.randomNonce();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: "openid profile email notes:read",
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
    nonce,
    state,
  });
  say({ authorization_url: url.href });

  const callback = new URL(await nextLine());
  // Checks state, iss (RFC 9207, since discovery says it is supported), the id_token (its
  // signature from jwks_uri, iss, aud, exp, iat, nonce, at_hash...) and PKCE.
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: verifier,
    expectedNonce: nonce,
    expectedState: state,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  const endSession = client.buildEndSessionUrl(config, {
    id_token_hint: refreshed.id_token,
    post_logout_redirect_uri: postLogoutUri,
    state: "end-state",
  });
  say({
    claims,
    userinfo,
    access_token: tokens.access_token,
    refreshed_claims: refreshed.claims(),
    refreshed_access_token: refreshed.access_token,
    end_session_url: endSession.href,
  });
} catch (error) {
  say({ error: String(error && error.stack ? error.stack : error), code: error && error.code, cause: error && error.cause ? String(JSON.stringify(error.cause)) : null });
  process.exitCode = 1;
} finally {
  lines.close();
}
