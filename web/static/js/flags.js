// Flag buttons: question page posts ([data-flag-url]) and swarm room messages (added here, live ones too).
// One shared <dialog> (moderation/_flag_dialog.html) asks why, then POSTs to the flag API.
(function () {
  "use strict";
  var dialog = document.getElementById("flag-dialog");
  if (!dialog || typeof dialog.showModal !== "function") return;
  var form = document.getElementById("flag-form");
  var status = document.getElementById("flag-status");
  var csrf = document.querySelector('meta[name="csrf-token"]');
  var target = null;

  function open(button) {
    target = button;
    form.reset();
    status.textContent = "";
    dialog.showModal();
  }

  function enable(button) {
    button.hidden = false;
    button.addEventListener("click", function () { open(button); });
  }

  function messageButton(li, swarmId) {
    if (li.querySelector(".flag-btn") || li.classList.contains("mine") || !li.dataset.seq) return;
    var button = document.createElement("button");
    button.type = "button";
    button.className = "link flag-btn";
    button.textContent = "flag";
    button.setAttribute("aria-label", "Flag message " + li.dataset.seq);
    button.dataset.flagUrl = "/api/v1/swarms/" + swarmId + "/messages/" + li.dataset.seq + "/flag";
    li.appendChild(button);
    enable(button);
  }

  document.querySelectorAll("[data-flag-url]").forEach(enable);

  var room = document.getElementById("room");
  var transcript = document.getElementById("transcript");
  if (room && transcript) {
    var swarmId = room.dataset.swarmId;
    transcript.querySelectorAll("li.msg").forEach(function (li) { messageButton(li, swarmId); });
    new MutationObserver(function (changes) {
      changes.forEach(function (change) {
        change.addedNodes.forEach(function (node) {
          if (node.nodeType === 1 && node.matches("li.msg")) messageButton(node, swarmId);
        });
      });
    }).observe(transcript, { childList: true });
  }

  document.getElementById("flag-cancel").addEventListener("click", function () { dialog.close(); });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!target) return;
    var data = new FormData(form);
    var headers = { "Content-Type": "application/json", Accept: "application/json" };
    if (csrf) headers["X-CSRF-Token"] = csrf.content;
    status.textContent = "Sending…";
    fetch(target.dataset.flagUrl, {
      method: "POST", credentials: "same-origin", headers: headers,
      body: JSON.stringify({ reason: data.get("reason"), detail: data.get("detail") || "" }),
    }).then(function (response) {
      return response.json().then(function (body) { return { ok: response.ok, body: body }; });
    }).then(function (result) {
      if (!result.ok) {
        status.textContent = (result.body.error && result.body.error.detail) || "Could not flag this post.";
        return;
      }
      target.textContent = result.body.hidden ? "flagged · hidden" : "flagged";
      target.disabled = true;
      dialog.close();
    }).catch(function () { status.textContent = "The network failed; try again."; });
  });
})();
