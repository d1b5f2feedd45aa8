// Suggest-as-you-type on the ask page (issue 3): while the customer writes the title (and details),
// ask /api/v1/similar, debounced, and list similar questions with the first lines of their accepted
// answers. Only the newest request counts: older ones are aborted, and late replies are ignored.
(function () {
  "use strict";
  var DEBOUNCE_MS = 250;
  var MIN_CHARS = 8;
  var MAX_QUERY = 2000;
  var title = document.getElementById("ask-title");
  var body = document.getElementById("ask-body");
  var list = document.getElementById("suggest-list");
  var status = document.getElementById("suggest-status");
  if (!title || !list || !status) return;

  var timer = null;
  var controller = null;
  var lastQuery = "";

  function query() {
    var text = title.value.trim();
    var details = body ? body.value.trim() : "";
    if (details) text += "\n" + details;
    return text.slice(0, MAX_QUERY);
  }

  var el = window.SupportSwarm.el;

  function render(data) {
    status.removeAttribute("aria-busy");
    list.replaceChildren();
    var results = Array.isArray(data.results) ? data.results : [];
    if (!results.length) {
      status.textContent = "No similar questions yet: post yours and the community will help.";
      return;
    }
    status.textContent = data.decision === "answer"
      ? "This looks already solved: check the first answer before posting."
      : "Similar questions (" + results.length + "):";
    results.forEach(function (r, i) {
      if (typeof r.id !== "number" || typeof r.title !== "string") return;
      var item = el("li", "suggest-item" + (i === 0 && data.decision === "answer" ? " suggest-best" : ""));
      var link = el("a", "suggest-title", r.title);
      link.href = "/questions/" + r.id + (r.accepted_answer_id ? "#answer-" + r.accepted_answer_id : "");
      item.appendChild(link);
      if (i === 0 && data.decision === "answer") {
        item.appendChild(el("span", "suggest-score", " likely your answer"));
      }
      if (r.accepted_answer_id && typeof r.answer_excerpt === "string" && r.answer_excerpt) {
        item.appendChild(el("p", "suggest-answer", r.answer_excerpt));
      } else {
        item.appendChild(el("p", "muted suggest-answer", "Not answered yet."));
      }
      list.appendChild(item);
    });
  }

  function search() {
    var q = query();
    if (q === lastQuery) return;
    lastQuery = q;
    if (controller) controller.abort();
    if (q.length < MIN_CHARS) {
      list.replaceChildren();
      status.removeAttribute("aria-busy");
      status.textContent = "Start typing your title: similar solved questions show up here.";
      return;
    }
    controller = new AbortController();
    var mine = controller;
    status.textContent = "Looking for similar questions…";
    status.setAttribute("aria-busy", "true"); // app.css shows a spinner while a search is in flight
    fetch("/api/v1/similar?limit=5&q=" + encodeURIComponent(q), {
      headers: { "Accept": "application/json" },
      credentials: "same-origin",
      signal: controller.signal
    }).then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    }).then(function (data) {
      if (mine === controller) render(data);
    }).catch(function (err) {
      if (err && err.name === "AbortError") return;
      status.removeAttribute("aria-busy");
      status.textContent = "Suggestions are unavailable right now; you can still post your question.";
    });
  }

  function schedule() {
    if (timer) clearTimeout(timer);
    timer = setTimeout(search, DEBOUNCE_MS);
  }

  title.addEventListener("input", schedule);
  if (body) body.addEventListener("input", schedule);
  if (title.value.trim()) schedule(); // a form re-shown after an error
})();
