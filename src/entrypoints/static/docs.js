// Swagger UI for this server's own /openapi.json. Nothing is fetched from anywhere else:
// no validator badge (validatorUrl: null), no remote presets or fonts.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
