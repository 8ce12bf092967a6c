/* The agent's tools in the browser (issue 15): the reply box's "/" menu of canned responses.
 *
 * Typing "/" at the start of the reply or after a space, then letters, asks the server for matching
 * canned responses of the team, with the open conversation's variables already filled in
 * (inbox/views_tools.py canned_search; its URL is on #canned-config). Up/Down move, Enter or Tab inserts
 * (replacing "/shortcut"), Escape closes; a click inserts too. Nothing is sent: the agent reads and sends.
 * No inline code anywhere (the CSP): everything is delegated from document.
 */
(function () {
  "use strict";

  var TRIGGER = /(^|\s)\/([\w-]{0,40})$/;
  var pending = null;
  var lastQuery = null;

  function box() { return document.getElementById("reply-body"); }
  function menu() { return document.getElementById("canned-menu"); }
  function closeMenu() {
    var m = menu();
    if (m) { m.remove(); }
    lastQuery = null;
  }
  function tokenAtCaret(textarea) {
    var before = textarea.value.slice(0, textarea.selectionStart);
    var match = TRIGGER.exec(before);
    if (!match) { return null; }
    return { query: match[2], start: before.length - match[2].length - 1, end: textarea.selectionStart };
  }

  function show(textarea, html) {
    closeMenu();
    var tpl = document.createElement("template");
    tpl.innerHTML = html.trim();
    var list = tpl.content.firstElementChild;
    if (!list) { return; }
    textarea.parentNode.insertBefore(list, textarea);
    textarea.setAttribute("aria-controls", "canned-menu");
    textarea.setAttribute("aria-expanded", "true");
  }

  function search(textarea) {
    var config = document.getElementById("canned-config");
    var token = tokenAtCaret(textarea);
    if (!config || !token) { closeMenu(); return; }
    if (token.query === lastQuery && menu()) { return; }
    lastQuery = token.query;
    if (pending) { pending.abort(); }
    pending = new AbortController();
    fetch(config.getAttribute("data-url") + "?q=" + encodeURIComponent(token.query),
          { credentials: "same-origin", signal: pending.signal, headers: { "HX-Request": "true" } })
      .then(function (r) { return r.ok ? r.text() : ""; })
      .then(function (html) {
        if (html && tokenAtCaret(textarea)) { show(textarea, html); lastQuery = token.query; }
      })
      .catch(function () { /* aborted by the next keystroke */ });
  }

  function options() {
    var m = menu();
    return m ? Array.prototype.slice.call(m.querySelectorAll("[role=option]")) : [];
  }
  function move(step) {
    var opts = options();
    if (!opts.length) { return; }
    var i = opts.findIndex(function (o) { return o.classList.contains("is-active"); });
    var next = (i + step + opts.length) % opts.length;
    opts.forEach(function (o, k) {
      o.classList.toggle("is-active", k === next);
      o.setAttribute("aria-selected", k === next ? "true" : "false");
    });
    var b = box();
    if (b) { b.setAttribute("aria-activedescendant", opts[next].id); }
  }
  function insert(option) {
    var textarea = box();
    if (!textarea || !option) { return; }
    var token = tokenAtCaret(textarea);
    var text = option.getAttribute("data-text");
    if (token) {
      textarea.value = textarea.value.slice(0, token.start) + text + textarea.value.slice(token.end);
      var caret = token.start + text.length;
      textarea.setSelectionRange(caret, caret);
    } else {
      textarea.value += text;
    }
    closeMenu();
    textarea.focus();
    textarea.dispatchEvent(new Event("input", { bubbles: true }));
  }

  document.addEventListener("input", function (evt) {
    if (evt.target && evt.target.id === "reply-body") { search(evt.target); }
  });
  // Capture phase: runs before live.js's "Enter sends" handler, so Enter picks from an open menu.
  document.addEventListener("keydown", function (evt) {
    if (!evt.target || evt.target.id !== "reply-body" || !menu()) { return; }
    if (evt.key === "ArrowDown" || evt.key === "ArrowUp") {
      evt.preventDefault();
      move(evt.key === "ArrowDown" ? 1 : -1);
    } else if ((evt.key === "Enter" && !evt.shiftKey) || evt.key === "Tab") {
      var active = menu().querySelector("[role=option].is-active");
      if (!active) { closeMenu(); return; }
      evt.preventDefault();
      evt.stopImmediatePropagation();
      insert(active);
    } else if (evt.key === "Escape") {
      evt.preventDefault();
      closeMenu();
    }
  }, true);
  document.addEventListener("mousedown", function (evt) {
    var option = evt.target.closest && evt.target.closest("#canned-menu [role=option]");
    if (option) { evt.preventDefault(); insert(option); }
    else if (menu() && !(evt.target.closest && evt.target.closest("#canned-menu"))) { closeMenu(); }
  });
  document.addEventListener("htmx:beforeSwap", function () { closeMenu(); });
})();

/* Keyboard shortcuts of the inbox (listed in the help overlay, "?"), and the unread count in the title. */
(function () {
  "use strict";

  function typing(el) {
    return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  }
  function click(selector) {
    var el = document.querySelector(selector);
    if (el) { el.click(); return true; }
    return false;
  }
  function focus(selector) {
    var el = document.querySelector(selector);
    if (el) { el.focus(); return true; }
    return false;
  }
  function go(step) {
    var rows = Array.prototype.slice.call(document.querySelectorAll("#conversation-list > .conv-row"));
    if (!rows.length) { return; }
    var i = rows.findIndex(function (r) { return r.classList.contains("is-active"); });
    var next = i === -1 ? (step > 0 ? 0 : rows.length - 1) : Math.min(rows.length - 1, Math.max(0, i + step));
    if (next === i) { return; }
    var link = rows[next].querySelector("a.conv-link");
    if (link) { window.location.assign(link.href); }
  }
  function help() {
    var dialog = document.getElementById("shortcuts-help");
    if (dialog && !dialog.open) { dialog.showModal(); }
  }

  var KEYS = {
    "j": function () { go(1); },
    "k": function () { go(-1); },
    "r": function () { return focus("#reply-body"); },
    "n": function () { return focus("#note-body"); },
    "a": function () { return click(".thread-actions button[name=assign_to_me]"); },
    "e": function () { return click(".thread-actions button[name=status][value=resolved]"); },
    "o": function () { return click(".thread-actions button[name=status][value=open]"); },
    "s": function () {
      var menu = document.querySelector(".snooze-menu");
      if (menu) { menu.open = true; var first = menu.querySelector("button"); if (first) { first.focus(); } }
    },
    "/": function () { return focus("#id_q"); },
    "?": help
  };

  document.addEventListener("keydown", function (evt) {
    if (evt.defaultPrevented || evt.ctrlKey || evt.metaKey || evt.altKey || evt.isComposing) { return; }
    if (typing(evt.target)) {
      if (evt.key === "Escape" && !document.getElementById("canned-menu")) { evt.target.blur(); }
      return;
    }
    var action = KEYS[evt.key];
    if (!action || document.querySelector("dialog[open]")) { return; }
    evt.preventDefault();
    action();
  });

  // The page title counts the unread conversations of the list on screen: "(3) Conversations · ...".
  var baseTitle = null;
  function updateTitle() {
    var list = document.getElementById("conversation-list");
    if (!list) { return; }
    if (baseTitle === null) { baseTitle = document.title.replace(/^\(\d+\) /, ""); }
    var unread = list.querySelectorAll(":scope > .conv-row.is-unread").length;
    document.title = unread ? "(" + unread + ") " + baseTitle : baseTitle;
    document.body.setAttribute("data-unread-conversations", String(unread));
  }
  document.addEventListener("DOMContentLoaded", updateTitle);
  document.addEventListener("live:applied", updateTitle);
  document.addEventListener("htmx:afterSettle", updateTitle);
})();
