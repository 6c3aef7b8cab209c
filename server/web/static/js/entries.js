/* The list of answers: filter as you type, by words and by tag (the form also works without JS). */
"use strict";

(function () {
  var form = document.getElementById("entry-filter");
  var q = document.getElementById("filter-q");
  var tag = document.getElementById("filter-tag");
  var items = Array.prototype.slice.call(document.querySelectorAll("#entry-list .entry-item"));
  var count = document.getElementById("entry-count");
  var none = document.getElementById("entry-none");

  function apply() {
    var words = q.value.toLowerCase().split(/\s+/).filter(Boolean);
    var t = tag.value;
    var shown = 0;
    items.forEach(function (li) {
      var text = li.getAttribute("data-search");
      var tags = li.getAttribute("data-tags").split(" ");
      var ok = (!t || tags.indexOf(t) >= 0) && words.every(function (w) { return text.indexOf(w) >= 0; });
      li.hidden = !ok;
      if (ok) shown++;
    });
    count.textContent = shown + " of " + items.length + " answers";
    none.hidden = shown > 0;
    var params = new URLSearchParams();
    if (q.value) params.set("q", q.value);
    if (t) params.set("tag", t);
    var qs = params.toString();
    history.replaceState(null, "", "/entries" + (qs ? "?" + qs : ""));
  }

  q.addEventListener("input", apply);
  tag.addEventListener("change", apply);
  form.addEventListener("submit", function (ev) { ev.preventDefault(); apply(); });
})();
