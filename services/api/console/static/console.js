// jetpost console: the CSRF token on every htmx request, and live updates of the
// message list from /console/events (Server-Sent Events fed by the event log).
"use strict";
document.addEventListener("htmx:configRequest", function (evt) {
  var token = document.body.dataset.csrf;
  if (token) { evt.detail.headers["X-CSRF-Token"] = token; }
});
document.addEventListener("DOMContentLoaded", function () {
  var live = document.getElementById("live");
  var status = document.getElementById("live-status");
  if (!live || !window.EventSource) { return; }
  var pending = null;
  var source = new EventSource("/console/events");
  source.addEventListener("open", function () { if (status) { status.textContent = "live"; } });
  source.addEventListener("error", function () { if (status) { status.textContent = "reconnecting"; } });
  source.addEventListener("mail", function (evt) {
    var event = JSON.parse(evt.data);
    if (status) { status.textContent = "live: " + event.type + " " + event.message_id.slice(0, 12); }
    if (pending) { return; }
    // many events arrive together: refresh the first page once per half second
    pending = setTimeout(function () { pending = null; htmx.trigger(live, "refresh"); }, 500);
  });
});
