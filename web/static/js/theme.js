// Light or dark (issue 8): the system preference, unless the reader picked one with the toggle in the top
// bar; the choice is kept in localStorage. Loaded in <head> without `defer`, so a stored choice applies
// before the first paint (no flash of the wrong theme). CSP forbids inline scripts, hence this file.
(function () {
  "use strict";
  var KEY = "supportswarm:theme";
  var root = document.documentElement;
  var media = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;

  function stored() {
    try { return localStorage.getItem(KEY); } catch (e) { return null; } // storage may be blocked
  }
  function current() { return root.dataset.theme || (media && media.matches ? "dark" : "light"); }
  var saved = stored();
  if (saved === "light" || saved === "dark") root.dataset.theme = saved;

  function describe(button) {
    var dark = current() === "dark";
    button.setAttribute("aria-pressed", dark ? "true" : "false");
    button.title = dark ? "Switch to the light theme" : "Switch to the dark theme";
  }
  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("theme-toggle");
    if (!button) return;
    button.hidden = false; // without JavaScript the system preference applies and there is nothing to toggle
    describe(button);
    button.addEventListener("click", function () {
      var next = current() === "dark" ? "light" : "dark";
      root.dataset.theme = next;
      try { localStorage.setItem(KEY, next); } catch (e) { /* the choice lasts for this page only */ }
      describe(button);
    });
    if (media && media.addEventListener) media.addEventListener("change", function () { describe(button); });
  });
})();
