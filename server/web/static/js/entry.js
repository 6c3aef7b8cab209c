/* An entry's page: its demo section runs live (server/web/static/js/demo.js). */
"use strict";

(function () {
  var section = document.getElementById("demo");
  if (section) window.asktaDemo.attach(section, section.getAttribute("data-entry-id"));
})();
