/* Live updates for the inbox, on top of htmx and its websocket extension (both served by django-htmx).
 *
 * The server pushes HTML fragments. Elements with hx-swap-oob are swapped by htmx itself; elements
 * with data-upsert are placed here (the "live" htmx extension, applied to socket messages and to
 * ordinary htmx responses alike):
 *   data-upsert="thread"  a message: replaces its twin by id, else is inserted in time order into the
 *                         open thread of its conversation (ignored on other pages)
 *   data-upsert="list"    a conversation row: moved to its place by last activity if it matches the
 *                         list's filters, removed if it no longer does; with a search active only
 *                         rows already shown are updated
 *   data-upsert="trigger" fires data-event on <body> (e.g. "this thread got too much, reload it")
 * A socket that drops shows the offline notice; when it opens again every live region refreshes
 * itself (hx-trigger="live:refresh from:body") so nothing stale stays on screen. A socket closed because
 * the user's access changed (code 4401, inbox/consumers.py) reloads the page instead.
 *
 * Words shown by this script are translated with gettext()/interpolate() of Django's JavaScript catalog
 * (/jsi18n/, loaded before it by templates/base.html; djangojs.po); dates and times with Intl in the
 * page's language (<html lang>) and zone (<body data-tz>).
 */
(function () {
  "use strict";

  var gettext = window.gettext || function (s) { return s; };
  var ngettext = window.ngettext || function (s, p, n) { return n === 1 ? s : p; };
  var interpolate = window.interpolate || function (fmt, obj) {
    return fmt.replace(/%\(\w+\)s/g, function (m) { return String(obj[m.slice(2, -2)]); });
  };

  function insertSorted(container, el, descending, stopBefore) {
    var key = el.getAttribute("data-sort");
    var children = container.querySelectorAll(":scope > [data-sort]");
    for (var i = 0; i < children.length; i++) {
      var other = children[i].getAttribute("data-sort");
      if (descending ? key > other : key < other) {
        container.insertBefore(el, children[i]);
        return true;
      }
    }
    if (stopBefore) {  // past the last loaded row while more pages exist: it belongs to a later page
      return false;
    }
    var tail = container.querySelector(":scope > .load-more");
    container.insertBefore(el, tail || null);
    return true;
  }

  // One separator before the first message of each day, whatever order messages arrived in (a live
  // message after midnight, a page of older ones prepended): rebuilt from the messages' data-day.
  function daySeparators(thread) {
    Array.prototype.forEach.call(thread.querySelectorAll(":scope > .day-sep"), function (sep) { sep.remove(); });
    var last = null;
    Array.prototype.forEach.call(thread.querySelectorAll(":scope > [data-day]"), function (msg) {
      var day = msg.getAttribute("data-day");
      if (day === last) { return; }
      last = day;
      var sep = document.createElement("div");
      sep.className = "day-sep";
      sep.setAttribute("role", "separator");
      sep.setAttribute("data-day", day);
      var label = document.createElement("span");
      label.textContent = msg.getAttribute("data-day-label") || day;
      sep.appendChild(label);
      thread.insertBefore(sep, msg);
    });
  }

  // --- time zones: pushed fragments are rendered in UTC (no request, many viewers); show them in the
  // page's zone (<body data-tz>, the zone the server rendered the page in: inbox/timezones.py) --------
  function zone() { return document.body.getAttribute("data-tz") || undefined; }
  function lang() { return document.documentElement.lang || undefined; }
  function partsOf(date, opts) {
    var out = {};
    opts.timeZone = zone();
    try {
      new Intl.DateTimeFormat(lang(), opts).formatToParts(date).forEach(function (p) { out[p.type] = p.value; });
    } catch (e) {  // an unknown zone: leave the server's text
      return null;
    }
    return out;
  }
  function localDay(date) {
    var p = partsOf(date, { year: "numeric", month: "2-digit", day: "2-digit", numberingSystem: "latn" });
    return p ? p.year + "-" + p.month + "-" + p.day : null;
  }
  function daysBetween(a, b) {  // "YYYY-MM-DD" strings, calendar days from a to b
    var pa = a.split("-"), pb = b.split("-");
    return Math.round((Date.UTC(+pb[0], pb[1] - 1, +pb[2]) - Date.UTC(+pa[0], pa[1] - 1, +pa[2])) / 86400000);
  }
  function hourMinute(date) {
    var p = partsOf(date, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
    return p ? p.hour + ":" + p.minute : null;
  }
  function dayLabel(date, day) {
    var diff = daysBetween(day, localDay(new Date()));
    if (diff === 0) { return document.body.getAttribute("data-today-label") || gettext("Today"); }
    if (diff === 1) { return document.body.getAttribute("data-yesterday-label") || gettext("Yesterday"); }
    var p = partsOf(date, { weekday: "long", day: "2-digit", month: "long", year: "numeric" });
    // Translators: a day separator's date, e.g. "Friday, 09 January 2026" (the names come from Intl).
    return p ? interpolate(gettext("%(weekday)s, %(day)s %(month)s %(year)s"), p, true) : day;
  }
  function shortTime(date) {
    var day = localDay(date);
    var diff = daysBetween(day, localDay(new Date()));
    if (diff === 0) { return hourMinute(date); }
    var p = diff < 7 ? partsOf(date, { weekday: "short" }) : partsOf(date, { day: "2-digit", month: "short", year: "numeric" });
    if (!p) { return null; }
    if (diff < 7) { return p.weekday; }
    return p.day + " " + p.month + (day.slice(0, 4) !== localDay(new Date()).slice(0, 4) ? " " + p.year : "");
  }
  // A pushed thread item (message, note) or list row, in place: its day, day label and time.
  function localize(el) {
    var time = el.querySelector("time[datetime]");
    if (!time) { return; }
    var date = new Date(time.getAttribute("datetime"));
    if (isNaN(date.getTime())) { return; }
    var day = localDay(date);
    if (!day) { return; }
    if (el.hasAttribute("data-day")) {
      el.setAttribute("data-day", day);
      el.setAttribute("data-day-label", dayLabel(date, day));
      var hm = hourMinute(date);
      if (hm) { time.textContent = hm; }
    } else if (time.classList.contains("conv-time")) {
      var text = shortTime(date);
      if (text) { time.textContent = text; }
    }
  }

  // <time data-fmt="datetime"> in swapped fragments (e.g. "snoozed until", pushed in UTC): the page's zone.
  function localizeDateTimes(root) {
    if (!root || !root.querySelectorAll) { return; }
    root.querySelectorAll('time[data-fmt="datetime"]').forEach(function (time) {
      var date = new Date(time.getAttribute("datetime"));
      var p = isNaN(date.getTime()) ? null : partsOf(date, { weekday: "short", day: "2-digit", month: "short",
                                                               hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
      // Translators: "snoozed until" date and time, e.g. "Fri 09 Jan, 09:00" (the names come from Intl).
      if (p) { time.textContent = interpolate(gettext("%(weekday)s %(day)s %(month)s, %(hour)s:%(minute)s"), p, true); }
    });
  }
  // (the whole page: an outerHTML swap leaves the event its detached old target; these elements are few)
  document.addEventListener("htmx:oobAfterSwap", function () { localizeDateTimes(document.body); });

  function upsertMessage(el) {
    localize(el);
    var existing = document.getElementById(el.id);
    if (existing) {
      existing.replaceWith(el);
      return true;
    }
    var thread = document.querySelector('#thread-messages[data-conversation="' + el.getAttribute("data-conversation") + '"]');
    if (!thread) {
      return false;
    }
    var scroller = document.getElementById("thread-scroll");
    var nearBottom = scroller && scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 120;
    var empty = document.getElementById("thread-empty");
    if (empty) { empty.remove(); }
    insertSorted(thread, el, false, false);
    daySeparators(thread);
    if (scroller && (nearBottom || el.getAttribute("data-direction") === "out")) {
      scroller.scrollTop = scroller.scrollHeight;
    }
    if (el.getAttribute("data-direction") === "in") {
      htmx.trigger(document.body, "live:inbound");
    }
    return true;
  }

  function rowMatches(list, el) {
    var status = list.getAttribute("data-status");
    if (status !== "all" && el.getAttribute("data-status") !== status) { return false; }
    var scope = list.getAttribute("data-scope");
    var assignee = el.getAttribute("data-assignee");
    if (scope === "mine" && assignee !== list.getAttribute("data-user")) { return false; }
    if (scope === "unassigned" && assignee !== "") { return false; }
    var connection = list.getAttribute("data-connection");
    if (connection && el.getAttribute("data-connection") !== connection) { return false; }
    var label = list.getAttribute("data-label");
    if (label && (el.getAttribute("data-labels") || "").indexOf(" " + label + " ") === -1) { return false; }
    return true;
  }

  function upsertRow(el) {
    var list = document.getElementById("conversation-list");
    if (!list) { return false; }
    localize(el);
    var existing = document.getElementById(el.id);
    if (list.getAttribute("data-open") === el.getAttribute("data-id")) {
      el.classList.add("is-active");
    }
    if (!rowMatches(list, el)) {
      if (existing) { existing.remove(); }
      return true;
    }
    if (list.getAttribute("data-q")) {  // a search result list: refresh rows in place, add none
      if (existing) { existing.replaceWith(el); }
      return true;
    }
    if (existing) { existing.remove(); }
    var placed = insertSorted(list, el, true, !!document.getElementById("list-more"));
    var empty = document.getElementById("list-empty");
    if (placed && empty) { empty.remove(); }
    return placed;
  }

  function applyUpserts(html) {
    if (html.indexOf("data-upsert") === -1) { return html; }
    var tpl = document.createElement("template");
    tpl.innerHTML = html;
    var touched = [];
    Array.prototype.slice.call(tpl.content.children).forEach(function (el) {
      var kind = el.getAttribute("data-upsert");
      if (!kind) { return; }
      el.remove();
      el.removeAttribute("data-upsert");
      var placed = false;
      if (kind === "thread") { placed = upsertMessage(el); }
      else if (kind === "list") { placed = upsertRow(el); }
      else if (kind === "trigger") { htmx.trigger(document.body, el.getAttribute("data-event")); }
      if (placed) { touched.push(el); }
    });
    touched.forEach(function (el) { htmx.process(el); });
    document.dispatchEvent(new CustomEvent("live:applied", { detail: { count: touched.length } }));
    return tpl.innerHTML;
  }

  // A refused form (422) is swapped in so its message shows; other errors are not swapped.
  htmx.config.responseHandling = [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "422", swap: true, error: false },
    { code: "[45]..", swap: false, error: true },
    { code: "...", swap: false }
  ];

  htmx.defineExtension("live", {
    transformResponse: function (text) { return applyUpserts(text); }
  });

  // --- connection state: say when we are offline; refresh everything after a reconnect ------------
  var everOpened = false;
  document.addEventListener("htmx:wsOpen", function () {
    var notice = document.getElementById("live-status");
    if (notice) { notice.hidden = true; }
    document.body.setAttribute("data-live", "online");
    if (everOpened) { htmx.trigger(document.body, "live:refresh"); }
    everOpened = true;
  });
  document.addEventListener("htmx:wsClose", function (evt) {
    // 4401: the server closed the socket because this user's access changed (logged out, removed from
    // the team, another role). Reload: the page shows the login, a 404, or what the new role may see.
    if (evt.detail && evt.detail.event && evt.detail.event.code === 4401) {
      document.body.setAttribute("data-live", "revoked");
      window.location.reload();
      return;
    }
    var notice = document.getElementById("live-status");
    if (notice) { notice.hidden = false; }
    document.body.setAttribute("data-live", "offline");
  });

  // --- reply box: Enter sends, Shift+Enter adds a line ------------------------------------------------
  document.addEventListener("keydown", function (evt) {
    var t = evt.target;
    if (evt.key !== "Enter" || evt.shiftKey || evt.isComposing || !t.matches || !t.matches("textarea[data-enter-submits]")) { return; }
    evt.preventDefault();
    if (t.form) { t.form.requestSubmit(); }
  });

  // --- reply box: a file dropped on it or pasted into it becomes the attachment (the file picker's input) ---
  function attachTo(form, files) {
    var input = form && form.querySelector("input[data-attachment]");
    if (!input || !files || !files.length || typeof DataTransfer === "undefined") { return false; }
    var dt = new DataTransfer();
    dt.items.add(files[0]);
    input.files = dt.files;
    return true;
  }
  document.addEventListener("dragover", function (evt) {
    if (evt.target.closest && evt.target.closest("#reply-form")) { evt.preventDefault(); }
  });
  document.addEventListener("drop", function (evt) {
    var form = evt.target.closest && evt.target.closest("#reply-form");
    if (form && evt.dataTransfer && attachTo(form, evt.dataTransfer.files)) { evt.preventDefault(); }
  });
  document.addEventListener("paste", function (evt) {
    var form = evt.target.closest && evt.target.closest("#reply-form");
    if (form && evt.clipboardData && evt.clipboardData.files.length && attachTo(form, evt.clipboardData.files)) { evt.preventDefault(); }
  });

  // --- reply box: an attachment over its kind's limit is refused before uploading (the caption stays);
  // an upload shows its progress (XMLHttpRequest upload events); a failed upload says so. The server
  // checks again from the file's bytes and answers a refusal with the form re-rendered (422). ----------
  function replyNotice(form, text) {
    var notice = form.querySelector("#reply-error");
    if (!notice) { return; }
    notice.textContent = text || "";
    notice.hidden = !text;
    var box = form.querySelector("#reply-body");
    if (box) {
      if (text) { box.setAttribute("aria-invalid", "true"); box.setAttribute("aria-describedby", "reply-error"); }
      else { box.removeAttribute("aria-invalid"); }
    }
  }
  // What WhatsApp sends a file as, from the browser's idea of its type (inbox/mediatypes.py SEND_KIND).
  function sendKind(type) {
    if (type === "image/jpeg" || type === "image/png") { return "image"; }
    if (type === "video/mp4" || type === "video/3gpp") { return "video"; }
    if (/^audio\/(ogg|mpeg|mp3|aac|mp4|x-m4a)$/.test(type)) { return "audio"; }
    return "document";
  }
  function sizeText(bytes) {  // like Django's filesizeformat
    var units = ["bytes", "KB", "MB", "GB"], n = bytes, i = 0;
    if (bytes < 1024) { return bytes + " bytes"; }
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return n.toFixed(1) + " " + units[i];
  }
  function attachedFile(form) {
    var input = form && form.querySelector("input[data-attachment]");
    return input && input.files && input.files.length ? input.files[0] : null;
  }
  function isReplyForm(evt) {
    var form = evt.detail && evt.detail.elt;
    return form && form.id === "reply-form" ? form : null;
  }
  document.addEventListener("htmx:beforeRequest", function (evt) {
    var form = isReplyForm(evt);
    var file = form && attachedFile(form);
    if (!file) { return; }
    var limits = {};
    try { limits = JSON.parse(form.getAttribute("data-limits") || "{}"); } catch (e) { limits = {}; }
    var limit = limits[sendKind(file.type)] || limits.document;
    if (limit && file.size > limit.bytes) {
      evt.preventDefault();
      form.setAttribute("data-refused", "too-big");
      replyNotice(form, (form.getAttribute("data-too-big") || "")
        .split("{kind}").join(limit.label).split("{size}").join(sizeText(file.size))
        .split("{limit}").join(sizeText(limit.bytes)));
      return;
    }
    form.removeAttribute("data-refused");
    replyNotice(form, "");
  });
  document.addEventListener("htmx:beforeSend", function (evt) {
    var form = isReplyForm(evt);
    var panel = form && attachedFile(form) && form.querySelector("[data-upload]");
    var xhr = evt.detail.xhr;
    if (!panel || !xhr || !xhr.upload) { return; }
    var bar = panel.querySelector("progress");
    bar.value = 0;
    panel.hidden = false;
    form.setAttribute("data-uploading", "0");
    xhr.upload.addEventListener("progress", function (e) {
      if (!e.lengthComputable || !e.total) { return; }
      var percent = Math.round(e.loaded * 100 / e.total);
      bar.value = percent;
      form.setAttribute("data-uploading", String(percent));
    });
  });
  document.addEventListener("htmx:afterRequest", function (evt) {
    var form = isReplyForm(evt);
    if (!form) { return; }
    var panel = form.querySelector("[data-upload]");
    if (panel) { panel.hidden = true; }
    form.removeAttribute("data-uploading");
    var status = evt.detail.xhr ? evt.detail.xhr.status : 0;
    if (form.hasAttribute("data-refused")) { return; }  // never sent: the refusal stays shown
    if (status === 0 || (status >= 400 && status !== 422)) {  // not swapped: the caption and file stay
      replyNotice(form, form.getAttribute("data-upload-failed"));
    }
  });

  function scrollThreadToBottom() {
    var scroller = document.getElementById("thread-scroll");
    if (scroller) { scroller.scrollTop = scroller.scrollHeight; }
  }
  document.addEventListener("DOMContentLoaded", scrollThreadToBottom);
  document.addEventListener("htmx:afterSwap", function (evt) {
    var messages = document.getElementById("thread-messages");
    if (messages) { daySeparators(messages); }  // cheap; covers older pages swapped in above the thread
    if (evt.detail && evt.detail.target && evt.detail.target.id === "thread") { scrollThreadToBottom(); }
    var box = document.getElementById("reply-body");
    if (box && evt.detail && evt.detail.target && evt.detail.target.id === "reply-form") { box.focus(); }
  });
  // A form with data-confirm asks first (an attribute, not an inline onsubmit: the CSP allows no inline code).
  document.addEventListener("submit", function (evt) {
    var form = evt.target;
    var question = form && form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      evt.preventDefault();
      evt.stopImmediatePropagation();
    }
  }, true);
  // Fragments pushed over the socket are rendered without a request, so they carry no CSRF field.
  // A plain (non-htmx) POST form that lacks one gets the page's token when it is submitted.
  document.addEventListener("submit", function (evt) {
    var form = evt.target;
    if (!form || (form.method || "").toLowerCase() !== "post" || form.querySelector("[name=csrfmiddlewaretoken]")) { return; }
    var headers = document.body.getAttribute("hx-headers");
    var token = headers ? JSON.parse(headers)["X-CSRFToken"] : "";
    if (!token) { return; }
    var input = document.createElement("input");
    input.type = "hidden";
    input.name = "csrfmiddlewaretoken";
    input.value = token;
    form.appendChild(input);
  }, true);
  // Ages tick: a <time data-age datetime="..."> shows how long ago it was ("12 s ago"), its absolute
  // time in the tooltip. The runner pushes each live number's heartbeat (inbox.events), which restarts it.
  function age(seconds) {
    if (seconds < 5) { return gettext("just now"); }
    if (seconds < 120) { return interpolate(gettext("%(n)s s ago"), { n: Math.floor(seconds) }, true); }
    if (seconds < 7200) { return interpolate(gettext("%(n)s min ago"), { n: Math.floor(seconds / 60) }, true); }
    if (seconds < 172800) { return interpolate(gettext("%(n)s h ago"), { n: Math.floor(seconds / 3600) }, true); }
    var days = Math.floor(seconds / 86400);
    return interpolate(ngettext("%(n)s day ago", "%(n)s days ago", days), { n: days }, true);
  }
  function tickAges() {
    var now = Date.now();
    document.querySelectorAll("time[data-age]").forEach(function (el) {
      var at = Date.parse(el.getAttribute("datetime"));
      if (isNaN(at)) { return; }
      if (!el.title) { el.title = el.textContent; }
      el.textContent = age(Math.max(0, (now - at) / 1000));
      el.setAttribute("data-age", String(Math.round((now - at) / 1000)));
    });
  }
  tickAges();
  setInterval(tickAges, 1000);
})();
