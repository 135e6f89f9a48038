// Starts Swagger UI from the container's data attributes: no inline script, so the docs page
// works under the same strict Content-Security-Policy as every other page.
const root = document.getElementById("swagger-ui");
const ui = window.SwaggerUIBundle({
  url: root.dataset.openapiUrl,
  dom_id: "#swagger-ui",
  deepLinking: true,
  layout: "BaseLayout",
  presets: [window.SwaggerUIBundle.presets.apis],
  showExtensions: true,
  showCommonExtensions: true,
});
ui.initOAuth({ clientId: root.dataset.clientId, scopes: root.dataset.scopes });
