// The live swarm room (README "Swarm protocol"). No framework, no build step.
// Exactly-once display: every message has a per-room seq; we keep the highest seq shown (memory +
// sessionStorage), resume from it on every reconnect, drop seqs already shown, and treat a gap as a
// reason to reconnect (the server then sends what is missing from the database).
(function () {
  "use strict";
  var root = document.getElementById("room");
  if (!root || !window.WebSocket) return;

  var swarmId = Number(root.dataset.swarmId);
  var me = Number(root.dataset.userId);
  var canMark = root.dataset.canMark === "1";
  var maxBody = Number(root.dataset.maxBody) || 4000;
  var storeKey = "swarm:" + swarmId + ":last_seq";
  var transcript = document.getElementById("transcript");
  var membersEl = document.getElementById("members");
  var typingEl = document.getElementById("typing");
  var banner = document.getElementById("swarm-banner");
  var form = document.getElementById("composer");
  var input = document.getElementById("say");

  var BANNER_AFTER = 3; // failed connection attempts before the banner shows
  var MAX_BACKOFF_MS = 30000;
  var LIVENESS_MS = 75000; // heartbeats come every 30-40 s
  var TYPING_TTL_MS = 10000;
  var TYPING_SEND_MS = 3000;

  var shown = new Set(); // seqs in the transcript
  var lastSeq = 0;
  var ws = null;
  var failures = 0;
  var retryTimer = null;
  var livenessTimer = null;
  var stopped = false; // refused (4401/4403/4404): do not retry
  var resolved = root.dataset.status === "resolved";
  var pending = new Map(); // client_msg_id -> {body, attempts, timer, el}
  var typers = new Map(); // user id -> {name, until}
  var lastTypingSent = 0;

  // The server-rendered transcript is where we start; sessionStorage remembers the head between loads.
  transcript.querySelectorAll("[data-seq]").forEach(function (li) {
    var seq = Number(li.dataset.seq);
    shown.add(seq);
    lastSeq = Math.max(lastSeq, seq);
  });
  function saveSeq() {
    try { sessionStorage.setItem(storeKey, String(lastSeq)); } catch (e) { /* private mode */ }
  }
  saveSeq();

  // --- event shapes: anything else is ignored ----------------------------------------------------------
  function isObj(v) { return v !== null && typeof v === "object" && !Array.isArray(v); }
  function isInt(v) { return typeof v === "number" && Math.floor(v) === v && v >= 0; }
  function isMessage(m) {
    return isObj(m) && isInt(m.seq) && m.seq > 0 && typeof m.body === "string" &&
      typeof m.client_msg_id === "string" && (m.author === null || (isObj(m.author) && isInt(m.author.id)));
  }
  var SHAPES = {
    welcome: function (e) { return isObj(e.swarm) && Array.isArray(e.members) && Array.isArray(e.backlog) && isInt(e.head); },
    message: isMessage,
    message_update: isMessage,
    presence: function (e) { return Array.isArray(e.members); },
    typing: function (e) { return isObj(e.user) && isInt(e.user.id); },
    resolved: function (e) { return isInt(e.answer_id); },
    error: function (e) { return typeof e.code === "string"; },
    heartbeat: function () { return true; },
    reconnect: function () { return true; }
  };

  // --- rendering ---------------------------------------------------------------------------------------
  var el = window.SupportSwarm.el;
  function showBanner(text) { banner.textContent = text; banner.hidden = !text; }
  function messageNode(m) {
    var li = el("li", "msg" + (m.author && m.author.id === me ? " mine" : ""));
    li.dataset.seq = String(m.seq);
    li.id = "msg-" + m.seq;
    var who = el("span", "who", m.author ? m.author.username : "deleted user");
    if (m.author && m.author.role !== "customer") who.appendChild(el("span", "role", " " + m.author.role));
    li.appendChild(who);
    var time = el("time", "muted", typeof m.at === "string" ? " " + m.at.slice(11, 16) : "");
    li.appendChild(time);
    if (canMark && !resolved) li.appendChild(markButton(m));
    li.appendChild(el("div", "text", m.body));
    return li;
  }
  function markButton(m) {
    var b = el("button", "btn btn-small mark", "Mark as solution");
    b.type = "button";
    b.addEventListener("click", function () {
      var edited = window.prompt("This becomes the question's accepted answer. Edit it if you like:", m.body);
      if (edited === null || !ws || ws.readyState !== 1) return;
      var frame = { type: "mark_solution", seq: m.seq };
      if (edited.trim() && edited !== m.body) frame.body = edited;
      ws.send(JSON.stringify(frame));
    });
    return b;
  }
  function addMessage(m) {
    if (shown.has(m.seq)) return true; // a repeat (retry echo, overlap after resume)
    if (m.seq > lastSeq + 1) return false; // a gap: resume from lastSeq instead of showing out of order
    shown.add(m.seq);
    lastSeq = m.seq;
    saveSeq();
    var empty = document.getElementById("empty-room");
    if (empty) empty.remove();
    var atBottom = transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 40;
    transcript.appendChild(messageNode(m));
    if (atBottom) transcript.scrollTop = transcript.scrollHeight;
    var mine = pending.get(m.client_msg_id);
    if (mine) {
      clearTimeout(mine.timer);
      if (mine.el) mine.el.remove();
      pending.delete(m.client_msg_id);
    }
    typers.delete(m.author ? m.author.id : -1);
    renderTyping();
    return true;
  }
  function renderMembers(members) {
    membersEl.textContent = "";
    members.forEach(function (m) {
      if (!isObj(m) || typeof m.username !== "string") return;
      var online = m.status === "online";
      var li = el("li", "member " + (online ? "online" : "offline"));
      li.appendChild(el("span", "dot"));
      li.appendChild(document.createTextNode(" " + m.username));
      if (m.role && m.role !== "customer") li.appendChild(el("span", "role", " " + m.role));
      li.appendChild(el("span", "sr-only", online ? " (online)" : " (offline)"));
      membersEl.appendChild(li);
    });
  }
  function renderTyping() {
    var now = Date.now();
    var names = [];
    typers.forEach(function (t, id) { if (t.until > now) names.push(t.name); else typers.delete(id); });
    typingEl.textContent = names.length ? names.join(", ") + (names.length > 1 ? " are" : " is") + " typing…" : "";
  }
  setInterval(renderTyping, 1000);
  function markResolved(answerId) {
    resolved = true;
    document.querySelectorAll(".msg .mark").forEach(function (b) { b.remove(); });
    if (form) form.hidden = true;
    var status = document.getElementById("swarm-status");
    if (status) { status.textContent = "solved"; status.className = "badge badge-resolved"; }
    showBanner("Solved: the marked message is now the accepted answer (#" + answerId + ").");
    banner.classList.remove("swarm-banner");
  }

  // --- sending: client_msg_id + retry until our own message comes back --------------------------------
  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "m-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);
  }
  function trySend(id) {
    var p = pending.get(id);
    if (!p) return;
    if (ws && ws.readyState === 1) ws.send(JSON.stringify({ type: "say", client_msg_id: id, body: p.body }));
    p.timer = setTimeout(function () { trySend(id); }, Math.min(2000 * Math.pow(2, p.attempts++), 15000));
  }
  function send(body) {
    var id = uuid();
    var li = el("li", "msg mine pending");
    li.appendChild(el("span", "who", "you"));
    li.appendChild(el("span", "muted", " sending…"));
    li.appendChild(el("div", "text", body));
    transcript.appendChild(li);
    transcript.scrollTop = transcript.scrollHeight;
    pending.set(id, { body: body, attempts: 0, timer: null, el: li });
    trySend(id);
  }
  function failPending(id, detail) {
    var p = pending.get(id);
    if (!p) return;
    clearTimeout(p.timer);
    pending.delete(id);
    if (p.el) { p.el.classList.remove("pending"); p.el.classList.add("failed"); p.el.title = detail; }
  }
  if (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var body = input.value.trim();
      if (!body || body.length > maxBody || resolved) return;
      input.value = "";
      send(body);
    });
    input.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); form.requestSubmit(); }
    });
    input.addEventListener("input", function () {
      var now = Date.now();
      if (ws && ws.readyState === 1 && now - lastTypingSent > TYPING_SEND_MS && !document.hidden) {
        lastTypingSent = now;
        ws.send(JSON.stringify({ type: "typing" }));
      }
    });
  }

  // --- events ------------------------------------------------------------------------------------------
  var handlers = {
    welcome: function (e) {
      failures = 0;
      showBanner("");
      if (e.reset) { // our last_seq is ahead of this room's head: start over from the server's state
        transcript.textContent = "";
        shown.clear();
        lastSeq = 0;
      }
      renderMembers(e.members);
      e.backlog.forEach(function (m) { if (isMessage(m)) addMessage(m); });
      if (e.swarm.status === "resolved") markResolved(e.swarm.solution_answer_id || 0);
      pending.forEach(function (_p, id) { clearTimeout(pending.get(id).timer); trySend(id); });
    },
    message: function (m) { if (!addMessage(m)) resume(); },
    message_update: function (m) { // e.g. hidden by a moderator; a message not shown yet arrives as it reads now
      var text = document.querySelector("#msg-" + m.seq + " .text");
      if (text) text.textContent = m.body;
    },
    presence: function (e) { renderMembers(e.members); },
    typing: function (e) {
      if (e.user.id === me) return;
      typers.set(e.user.id, { name: e.user.username, until: Date.now() + TYPING_TTL_MS });
      renderTyping();
    },
    resolved: function (e) { markResolved(e.answer_id); },
    error: function (e) {
      if (typeof e.client_msg_id === "string" && pending.has(e.client_msg_id)) {
        var p = pending.get(e.client_msg_id);
        if (e.code === "rate_limited") {
          clearTimeout(p.timer);
          p.timer = setTimeout(function () { trySend(e.client_msg_id); }, 1000 * (Number(e.retry_after) || 1));
          return;
        }
        failPending(e.client_msg_id, e.detail || e.code);
      }
      showBanner(typeof e.detail === "string" ? e.detail : e.code);
    },
    heartbeat: function () {},
    reconnect: function () {} // the close follows; onclose reconnects at once
  };
  function dispatch(raw) {
    var e;
    try { e = JSON.parse(raw); } catch (err) { return; }
    if (!isObj(e) || !SHAPES.hasOwnProperty(e.type) || !SHAPES[e.type](e)) return;
    try { handlers[e.type](e); } catch (err) { if (window.console) console.error("swarm event", e.type, err); }
  }

  // --- connection: resume, backoff, banner, pause while hidden -----------------------------------------
  function alive() {
    clearTimeout(livenessTimer);
    livenessTimer = setTimeout(function () { if (ws) ws.close(4000, "no heartbeat"); }, LIVENESS_MS);
  }
  function connect() {
    retryTimer = null;
    if (stopped || ws || document.hidden) return;
    var proto = location.protocol === "https:" ? "wss:" : "ws:";
    var sock = new WebSocket(proto + "//" + location.host + root.dataset.wsPath);
    ws = sock;
    sock.onopen = function () { alive(); sock.send(JSON.stringify({ type: "hello", last_seq: lastSeq })); };
    sock.onmessage = function (ev) { alive(); dispatch(ev.data); };
    sock.onclose = function (ev) {
      if (ws === sock) ws = null;
      clearTimeout(livenessTimer);
      closed(ev.code);
    };
  }
  function resume() { if (ws) ws.close(4000, "gap"); } // onclose reconnects with hello{last_seq}
  var REFUSED = {
    4401: "Log in to take part in this swarm.",
    4403: "You are not a member of this swarm.",
    4404: "This swarm does not exist."
  };
  function closed(code) {
    if (REFUSED[code]) { stopped = true; showBanner(REFUSED[code]); return; }
    failures += 1;
    // The first retry is immediate (a restart, a lifetime close, a slow-consumer close); then exponential.
    var delay = failures === 1 ? 0 : Math.min(500 * Math.pow(2, failures - 1), MAX_BACKOFF_MS);
    delay = delay * (0.5 + Math.random() / 2);
    if (code === 4429) delay = Math.max(delay, 5000);
    if (failures >= BANNER_AFTER) showBanner("Connection lost. Reconnecting… (your messages are kept)");
    if (!retryTimer) retryTimer = setTimeout(connect, delay);
  }
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && !ws && !stopped) { clearTimeout(retryTimer); retryTimer = null; connect(); }
  });
  window.addEventListener("online", function () { if (!ws && !stopped) { failures = 0; connect(); } });
  connect();
})();
