// Keyboard shortcuts for the case page (select with a letter, submit with Enter), and closing
// the rule panel. Everything here is optional:
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

  // Select, then submit (Ozone's habit): a letter only selects an action and says so; Enter
  // submits it and stays, Shift+Enter submits it and moves on. Nothing is recorded by a letter.
  var selected = null;

  function select(id, focusSelector) {
    var form = document.getElementById(id);
    if (!form) return false;
    if (selected) selected.classList.remove("is-selected");
    selected = form;
    form.classList.add("is-selected");
    var details = form.closest("details");
    if (details) details.open = true;
    var status = document.getElementById("selected-action");
    if (status) {
      status.hidden = false;
      status.textContent = "Selected: " + (form.getAttribute("data-action-label") || id) +
        ". Press Enter to submit, Shift+Enter to submit and go to the next case, Esc to cancel.";
    }
    var target = focusSelector && form.querySelector(focusSelector);
    if (target) target.focus();
    else form.scrollIntoView({block: "nearest"});
    return true;
  }

  function clearSelection() {
    if (!selected) return false;
    selected.classList.remove("is-selected");
    selected = null;
    var status = document.getElementById("selected-action");
    if (status) { status.hidden = true; status.textContent = ""; }
    return true;
  }

  function submitSelected(andNext) {
    if (!selected) return false;
    var then = selected.querySelector("[data-then]");
    if (then) then.value = andNext ? "next" : "stay";
    if (selected.requestSubmit) selected.requestSubmit(); else selected.submit();
    return true;
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
    var tag = event.target && event.target.tagName ? event.target.tagName.toLowerCase() : "";
    var handled = false;
    switch (event.key) {
      case "a":
        handled = select("accept-form", "input[type=checkbox]");
        break;
      case "o":
        handled = select("override-form", "input:not([type=hidden]), select, textarea");
        break;
      case "e":
        handled = select("escalate-form", "#escalate-reason");
        break;
      case "s":
        handled = select("skip-form", "#pass-reason");
        break;
      case "Enter":
        // A focused button or link already does what Enter means to it.
        if (tag === "button" || tag === "a" || tag === "summary") return;
        handled = submitSelected(event.shiftKey);
        break;
      case "Escape":
        handled = clearSelection();
        break;
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
    var revealText = event.target.closest("[data-reveal-text]");
    if (revealText) {  // without JavaScript the link reloads the page with ?reveal=1
      var box = revealText.closest("[data-sensitive-text]");
      if (box) { box.classList.add("is-revealed"); event.preventDefault(); return; }
    }
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
