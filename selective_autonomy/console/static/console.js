/* Operator console: live inbox and audits (server-sent events), keyboard shortcuts, htmx glue. No build step. */
(function () {
  "use strict";

  const $ = (selector, root) => (root || document).querySelector(selector);
  const $$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));
  const inbox = () => $("#inbox");
  const cards = () => $$("#inbox > .card");
  const auditList = () => $("#audits");
  const audits = () => $$("#audits > .audit");
  let focusedId = null;
  let focusedIndex = 0;

  // htmx: let 409 (card gone) and 422 (grammar refused the action) swap what the server retargets.
  htmx.config.responseHandling = [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "^(409|422)$", swap: true, error: false },
    { code: "[45]..", swap: false, error: true },
  ];

  // -- focus -------------------------------------------------------------------------------------

  function focusCard(card, scroll) {
    if (!card) return;
    cards().forEach((c) => c.classList.toggle("is-focused", c === card));
    focusedId = card.dataset.card;
    focusedIndex = cards().indexOf(card);
    if (!card.contains(document.activeElement)) card.focus({ preventScroll: true });
    if (scroll !== false) card.scrollIntoView({ block: "nearest", behavior: "smooth" });
  }

  function current() {
    const list = cards();
    return list.find((c) => c.dataset.card === focusedId) || null;
  }

  function move(step) {
    const list = cards();
    if (!list.length) return;
    const at = list.indexOf(current());
    focusCard(list[Math.max(0, Math.min(list.length - 1, at < 0 ? 0 : at + step))]);
  }

  function repairFocus() {
    const list = cards();
    $("#empty").hidden = list.length > 0;
    if (!list.length) { focusedId = null; return; }
    if (current()) { focusedIndex = list.indexOf(current()); return; }
    const active = document.activeElement;
    const typing = active && active.closest && active.closest(".card") && active !== document.body;
    if (focusedId === null || !typing) focusCard(list[Math.min(focusedIndex, list.length - 1)], false);
  }

  // -- live updates ------------------------------------------------------------------------------

  function fromHtml(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content;
  }

  function insertSorted(card) {
    const since = Number(card.dataset.since);
    const after = cards().find((c) => Number(c.dataset.since) > since);
    inbox().insertBefore(card, after || null);
  }

  function upsertCard(html) {
    const card = fromHtml(html).firstElementChild;
    if (!card) return;
    const old = cards().find((c) => c.dataset.session === card.dataset.session || c.dataset.card === card.dataset.card);
    const wasFocused = old && old.dataset.card === focusedId;
    if (old) old.remove();
    card.classList.add("is-new");
    insertSorted(card);
    htmx.process(card);
    tick();
    if (wasFocused || focusedId === null) focusCard(card, false);
    repairFocus();
  }

  function removeCard(id) {
    const card = cards().find((c) => c.dataset.card === id);
    if (card) card.remove();
    repairFocus();
  }

  function replaceInbox(html) {
    const keep = focusedId;
    inbox().replaceChildren(fromHtml(html));
    htmx.process(inbox());
    tick();
    const again = cards().find((c) => c.dataset.card === keep);
    if (again) focusCard(again, false); else { focusedId = null; repairFocus(); }
  }

  // -- audits: unattended steps sampled for review -------------------------------------------------

  function auditsChanged() {
    const count = audits().length;
    const empty = $("#audits-empty");
    if (empty) empty.hidden = count > 0;
    const badge = $("#audit-count");
    if (badge) badge.textContent = String(count);
  }

  function upsertAudit(html) {
    const list = auditList();
    const row = fromHtml(html).firstElementChild;
    if (!list || !row) return;
    const old = audits().find((a) => a.dataset.audit === row.dataset.audit);
    if (old) old.replaceWith(row);
    else {
      const shown = Number(row.dataset.shown);
      const after = audits().find((a) => Number(a.dataset.shown) > shown);
      row.classList.add("is-new");
      list.insertBefore(row, after || null);
    }
    htmx.process(row);
    auditsChanged();
  }

  function removeAudit(id) {
    const row = audits().find((a) => a.dataset.audit === id);
    if (row) row.remove();
    auditsChanged();
  }

  function replaceAudits(html) {
    const list = auditList();
    if (!list) return;
    // Keep rows whose "wrong" form is open: the operator may be typing in it.
    const open = new Map(audits().filter((a) => $(".card-form > *", a)).map((a) => [a.dataset.audit, a]));
    list.replaceChildren(fromHtml(html));
    audits().forEach((a) => { const kept = open.get(a.dataset.audit); if (kept) a.replaceWith(kept); });
    htmx.process(list);
    auditsChanged();
  }

  function replaceCounters(html) {
    const counters = $("#counters");
    counters.replaceChildren(fromHtml(html));
  }

  function setLive(state, text) {
    const badge = $("#live-status");
    if (!badge) return;
    badge.dataset.state = state;
    badge.textContent = text || state;
  }

  let source = null;
  function connect() {
    source = new EventSource("/events");
    source.addEventListener("open", () => setLive("live", "live"));
    source.addEventListener("inbox", (e) => replaceInbox(e.data));
    source.addEventListener("card", (e) => upsertCard(e.data));
    source.addEventListener("remove", (e) => removeCard(e.data));
    source.addEventListener("audits", (e) => replaceAudits(e.data));
    source.addEventListener("audit", (e) => upsertAudit(e.data));
    source.addEventListener("audit-remove", (e) => removeAudit(e.data));
    source.addEventListener("counters", (e) => replaceCounters(e.data));
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        setLive("offline", "offline");
        // Closed for good: usually the session ended. Ask, then sign in again or retry.
        fetch("/api/counters", { credentials: "same-origin" }).then((r) => {
          if (r.status === 401) window.location.assign("/login");
          else setTimeout(connect, 3000);
        }, () => setTimeout(connect, 3000));
      } else {
        setLive("connecting", "reconnecting");
      }
    });
  }

  // -- waiting timers ----------------------------------------------------------------------------

  function duration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    if (h) return `${h}h ${String(m).padStart(2, "0")}m`;
    if (m) return `${m}m ${String(s).padStart(2, "0")}s`;
    return `${s}s`;
  }

  function tick() {
    const now = Date.now() / 1000;
    $$("[data-since-of]").forEach((el) => {
      const waited = now - Number(el.dataset.sinceOf);
      el.textContent = duration(waited);
      const card = el.closest(".card");
      if (card) card.classList.toggle("is-late", waited > 120);
    });
  }

  // -- toasts ------------------------------------------------------------------------------------

  function toast(message, level) {
    const box = $("#toasts");
    if (!box || !message) return;
    const el = document.createElement("div");
    el.className = `toast toast-${level || "ok"}`;
    el.textContent = message;
    box.appendChild(el);
    setTimeout(() => el.remove(), 3500);
  }

  // -- keyboard ----------------------------------------------------------------------------------

  function closeForm(card) {
    const slot = card && $(".card-form", card);
    if (slot && slot.children.length) {
      slot.replaceChildren();
      if (card.matches("#inbox > .card")) focusCard(card);
      else card.focus();
    }
  }

  function press(card, answer) {
    const button = card && $(`[data-answer="${answer}"]`, card);
    if (button && !button.disabled) button.click();
  }

  document.addEventListener("keydown", (e) => {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
    const target = e.target;
    if (target.closest && target.closest("input, textarea, select, [contenteditable]")) {
      if (e.key === "Escape") closeForm(target.closest(".card"));
      return;
    }
    const card = current();
    switch (e.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "a": press(card, "accept"); break;
      case "c": press(card, "correct"); break;
      case "Escape": closeForm(card); break;
      default: return;
    }
    e.preventDefault();
  });

  document.addEventListener("focusin", (e) => {
    const card = e.target.closest && e.target.closest("#inbox > .card");
    if (card && card.dataset.card !== focusedId) focusCard(card, false);
  });

  document.addEventListener("click", (e) => {
    const close = e.target.closest && e.target.closest("[data-close-form]");
    if (close) closeForm(close.closest(".card"));
  });

  // -- htmx glue ---------------------------------------------------------------------------------

  document.body.addEventListener("console-toast", (e) => toast(e.detail.message, e.detail.level));
  document.body.addEventListener("htmx:afterSwap", (e) => {
    const target = e.detail.target;
    if (target && target.classList && target.classList.contains("card-form")) {
      const field = $("select, input:not([type=hidden]), textarea", target);
      if (field) field.focus();
    }
    repairFocus();
  });
  document.body.addEventListener("htmx:afterSettle", repairFocus);
  document.body.addEventListener("htmx:responseError", (e) => {
    if (e.detail.xhr.status === 401) window.location.assign("/login");
  });
  document.body.addEventListener("htmx:sendError", () => toast("The console is not reachable.", "error"));

  new MutationObserver(repairFocus).observe(inbox(), { childList: true });
  if (auditList()) new MutationObserver(auditsChanged).observe(auditList(), { childList: true });
  repairFocus();
  tick();
  setInterval(tick, 1000);
  connect();
})();
