// The staff swarm inbox: `inbox` hints over /ws/inbox say "something changed", and the list ranked for
// this viewer is fetched again (debounced); `invitation` events show a toast. Hints carry no data, so a
// missed one costs nothing: every (re)connect fetches the list once.
(function () {
  "use strict";
  var root = document.getElementById("inbox");
  if (!root || !window.WebSocket) return;
  var list = document.getElementById("inbox-list");
  var empty = document.getElementById("inbox-empty");
  var banner = document.getElementById("inbox-banner");
  var toasts = document.getElementById("toasts");
  var ws = null, failures = 0, retryTimer = null, refreshTimer = null, livenessTimer = null, stopped = false;

  var el = window.SupportSwarm.el;
  function showBanner(text) { banner.textContent = text; banner.hidden = !text; }
  function isItem(s) {
    return s !== null && typeof s === "object" && typeof s.id === "number" && typeof s.title === "string" &&
      Array.isArray(s.tags) && typeof s.match === "number" && typeof s.waiting_s === "number";
  }
  function row(s) {
    var li = el("li", "qrow");
    li.dataset.swarmId = String(s.id);
    var stats = el("div", "stats");
    stats.appendChild(el("span", "score", Math.round(s.match * 100) + "%"));
    stats.appendChild(el("span", "", "match"));
    li.appendChild(stats);
    var main = el("div");
    var a = el("a", "qtitle", s.title);
    a.href = "/swarms/" + s.id;
    main.appendChild(a);
    var meta = el("div", "meta");
    if (s.urgent) meta.appendChild(el("span", "badge badge-urgent", "urgent"));
    if (s.invited) meta.appendChild(el("span", "badge badge-invited", "invited"));
    if (s.joined) meta.appendChild(el("span", "badge", "joined"));
    s.tags.forEach(function (t) { meta.appendChild(el("span", "tag", String(t))); });
    meta.appendChild(el("span", "muted", "waiting " + Math.floor(s.waiting_s / 60) + " min · " + s.members +
      " in the room · " + s.messages + " messages"));
    main.appendChild(meta);
    li.appendChild(main);
    return li;
  }
  function refresh() {
    refreshTimer = null;
    fetch(root.dataset.api, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (data) {
        var items = Array.isArray(data.items) ? data.items.filter(isItem) : [];
        list.textContent = "";
        items.forEach(function (s) { list.appendChild(row(s)); });
        empty.hidden = items.length > 0;
      })
      .catch(function () { /* the next hint or the minute timer tries again */ });
  }
  function scheduleRefresh() { if (!refreshTimer) refreshTimer = setTimeout(refresh, 300); }
  setInterval(function () { if (!document.hidden) refresh(); }, 60000); // waiting times move on

  function toast(e) {
    var swarm = e.swarm;
    if (!swarm || typeof swarm.id !== "number" || !swarm.question || typeof swarm.question.title !== "string") return;
    var box = el("div", "toast");
    box.appendChild(el("strong", "", "You are invited to a swarm: "));
    var a = el("a", "", swarm.question.title);
    a.href = "/swarms/" + swarm.id;
    box.appendChild(a);
    toasts.appendChild(box);
    setTimeout(function () { box.remove(); }, 30000);
  }
  function dispatch(raw) {
    var e;
    try { e = JSON.parse(raw); } catch (err) { return; }
    if (e === null || typeof e !== "object" || typeof e.type !== "string") return;
    try {
      if (e.type === "welcome") { failures = 0; showBanner(""); refresh(); }
      else if (e.type === "inbox") scheduleRefresh();
      else if (e.type === "invitation") { toast(e); scheduleRefresh(); }
    } catch (err) { if (window.console) console.error("inbox event", e.type, err); }
  }
  function alive() {
    clearTimeout(livenessTimer);
    livenessTimer = setTimeout(function () { if (ws) ws.close(4000, "no heartbeat"); }, 75000);
  }
  function connect() {
    retryTimer = null;
    if (stopped || ws || document.hidden) return;
    var sock = new WebSocket((location.protocol === "https:" ? "wss:" : "ws:") + "//" + location.host + root.dataset.wsPath);
    ws = sock;
    sock.onopen = alive;
    sock.onmessage = function (ev) { alive(); dispatch(ev.data); };
    sock.onclose = function (ev) {
      if (ws === sock) ws = null;
      clearTimeout(livenessTimer);
      if (ev.code === 4401 || ev.code === 4403) { stopped = true; showBanner("Log in to see the swarm inbox."); return; }
      failures += 1;
      var delay = failures === 1 ? 0 : Math.min(500 * Math.pow(2, failures - 1), 30000) * (0.5 + Math.random() / 2);
      if (failures >= 3) showBanner("Live updates paused: reconnecting…");
      if (!retryTimer) retryTimer = setTimeout(connect, delay);
    };
  }
  document.addEventListener("visibilitychange", function () {
    if (document.hidden || stopped) return;
    refresh();
    if (!ws) { clearTimeout(retryTimer); retryTimer = null; connect(); }
  });
  connect();
})();
