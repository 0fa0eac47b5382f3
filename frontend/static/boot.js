// Starts the dashboard. A file rather than an inline script, so the Content-Security-Policy can
// allow only the dashboard's own scripts ('self').
import init from "/pkg/hookline_dashboard.js";
init();
