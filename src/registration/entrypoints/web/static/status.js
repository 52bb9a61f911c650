// Keeps "check your inbox" up to date: the email's delivery status, why it failed, and when
// another email may be asked for. Plain script, no library; the page works without it too.
(function () {
  "use strict";
  var section = document.getElementById("delivery");
  if (!section) return;
  var words = { PENDING: "sending\u2026", SENT: "sent", FAILED: "could not be delivered" };
  var state = null;

  function show(status) {
    state = status;
    var email = document.getElementById("email-status");
    email.textContent = words[status.email] || status.email;
    email.dataset.status = status.email;
    var reason = document.getElementById("email-reason");
    reason.textContent = status.reason;
    reason.hidden = !status.reason;
    var account = document.getElementById("account-status");
    account.dataset.status = status.registration;
    account.hidden = status.registration !== "ACTIVE";
    document.getElementById("resend-form").hidden = status.registration !== "PENDING_VERIFICATION";
    tick();
  }

  function tick() {
    if (!state) return;
    var button = document.getElementById("resend");
    var when = document.getElementById("resend-when");
    if (!state.resend_allowed_at) {
      button.disabled = true;
      when.textContent = "no more resends";
      return;
    }
    var allowedAt = new Date(state.resend_allowed_at);
    var wait = Math.ceil((allowedAt.getTime() - Date.now()) / 1000);
    button.disabled = wait > 0;
    when.textContent = wait > 0 ? "allowed again in " + wait + " s" : "";
  }

  function poll() {
    fetch(section.dataset.statusUrl, { cache: "no-store", credentials: "same-origin" })
      .then(function (reply) { return reply.ok ? reply.json() : null; })
      .then(function (status) {
        if (status) show(status);
        if (!status || status.registration === "PENDING_VERIFICATION") setTimeout(poll, 1500);
      })
      .catch(function () { setTimeout(poll, 3000); });
  }

  setInterval(tick, 1000);
  poll();
})();
