// Live refresh of the dashboard's key figures: polls the summary API (same filters as the page) every
// minute while the tab is visible. Charts and tables refresh with the page; the numbers do not wait.
(function () {
  "use strict";
  var INTERVAL_MS = 60000;
  var root = document.querySelector("[data-summary-url]");
  if (!root) { return; }
  var url = root.getAttribute("data-summary-url");

  function duration(s) {
    if (s === null || s === undefined) { return "–"; }
    var units = [["d", 86400, 1, 1.5], ["h", 3600, 1, 1.5], ["min", 60, 0, 1]];
    for (var i = 0; i < units.length; i++) {
      var u = units[i];
      if (s >= u[1] * u[3]) {
        var v = s / u[1];
        return v.toFixed(v < 10 ? u[2] : 0) + " " + u[0];
      }
    }
    return Math.round(s) + " s";
  }
  function percent(v) { return v === null || v === undefined ? "–" : (v * 100).toFixed(1) + "%"; }
  function count(v) { return v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US"); }
  var formats = { duration: duration, percent: percent, count: count };

  function pick(data, path) {
    return path.split(".").reduce(function (obj, key) { return obj === null || obj === undefined ? obj : obj[key]; }, data);
  }

  function apply(data) {
    var cells = document.querySelectorAll("[data-kpi]");
    for (var i = 0; i < cells.length; i++) {
      var el = cells[i];
      var format = formats[el.getAttribute("data-format")] || count;
      el.textContent = format(pick(data, el.getAttribute("data-kpi")));
    }
  }

  function refresh() {
    if (document.hidden) { return; }
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) { apply(data); } })
      .catch(function () { /* offline for a moment: the next tick tries again */ });
  }

  window.setInterval(refresh, INTERVAL_MS);
})();
