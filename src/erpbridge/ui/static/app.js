// erpbridge back office: the little script the pages need besides htmx (no inline scripts:
// the Content-Security-Policy allows files from /ui/static only).
"use strict";
// A form with data-confirm asks before it is sent (destructive actions).
document.addEventListener("submit", function (event) {
  var message = event.target.getAttribute("data-confirm");
  if (message && !window.confirm(message)) {
    event.preventDefault();
  }
}, true);
