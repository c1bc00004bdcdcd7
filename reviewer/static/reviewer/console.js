// Keyboard shortcuts for the case page, and closing the rule panel. Everything here is optional:
// the pages work without it. Shortcuts are off while typing in a field.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function typing(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  function submit(id) {
    var form = document.getElementById(id);
    if (!form) return false;
    if (form.requestSubmit) form.requestSubmit(); else form.submit();
    return true;
  }

  function toggleHelp() {
    var dialog = document.getElementById("shortcut-help");
    if (!dialog) return;
    if (dialog.open) dialog.close(); else dialog.showModal();
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Escape" && typing(event.target)) {
      event.target.blur();
      return;
    }
    if (typing(event.target)) return;
    var help = document.getElementById("shortcut-help");
    if (help && help.open && event.key !== "?") return;
    var handled = false;
    switch (event.key) {
      case "a":
        handled = submit("accept-form");
        break;
      case "o": {
        var form = document.getElementById("override-form");
        var first = form && form.querySelector("input:not([type=hidden]), select, textarea");
        if (first) { first.focus(); handled = true; }
        break;
      }
      case "e": {
        var reason = document.getElementById("escalate-reason");
        if (reason) { reason.focus(); handled = true; }
        break;
      }
      case "n":
        handled = submit("next-form");
        break;
      case "?":
        toggleHelp();
        handled = true;
        break;
    }
    if (handled) event.preventDefault();
  });

  document.addEventListener("click", function (event) {
    var help = event.target.closest("[data-shortcut-help]");
    if (help) { toggleHelp(); return; }
    var close = event.target.closest("[data-close-panel]");
    if (close) {
      var panel = close.closest("#rule-panel");
      if (panel) {
        var empty = document.createElement("div");
        empty.id = "rule-panel";
        panel.replaceWith(empty);
      }
    }
  });

  // Move focus to a rule panel htmx just opened, so keyboard and screen-reader users land on it.
  document.addEventListener("htmx:afterSettle", function (event) {
    var config = event.detail && event.detail.requestConfig;
    if (!config || !/\/rules\//.test(config.path || "")) return;
    var panel = document.getElementById("rule-panel");
    if (panel && panel.tagName.toLowerCase() === "aside") panel.focus();
  });
})();
