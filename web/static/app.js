// tagwatch UI: a little plain JavaScript on top of pages that work without it.
"use strict";

(function () {
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  async function getJSON(url, opts) {
    const res = await fetch(url, Object.assign({ headers: { Accept: "application/json" }, credentials: "same-origin" }, opts));
    const body = await res.json().catch(() => ({}));
    if (!res.ok) {
      const err = new Error(body.error || res.statusText);
      err.body = body;
      throw err;
    }
    return body;
  }

  // ---- Dashboard: filter, sort, check now ----

  function applyFilter() {
    const rows = $$("#image-rows tr");
    if (!rows.length) return;
    const q = ($("#search") || {}).value || "";
    const only = ($("#updates-only") || {}).checked;
    const needle = q.trim().toLowerCase();
    let shown = 0;
    for (const tr of rows) {
      const u = tr.dataset.update;
      const hasUpdate = u && u !== "none" && u !== "unknown" && u !== "error";
      const ok = (!only || hasUpdate) && (!needle || tr.textContent.toLowerCase().includes(needle));
      tr.hidden = !ok;
      if (ok) shown++;
    }
    const images = (n) => n + (n === 1 ? " image" : " images");
    $("#shown").textContent = shown === rows.length ? images(rows.length) : shown + " of " + images(rows.length);
    $("#no-match").hidden = shown !== 0;
  }

  function cellValue(tr, i) {
    const td = tr.children[i];
    return td.dataset.v !== undefined ? td.dataset.v : td.textContent.trim();
  }

  function sortBy(th) {
    const table = th.closest("table");
    const i = Array.from(th.parentNode.children).indexOf(th);
    const dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    $$("th", table).forEach((h) => h.removeAttribute("aria-sort"));
    th.setAttribute("aria-sort", dir);
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    const sign = dir === "ascending" ? 1 : -1;
    rows.sort((a, b) => {
      const x = cellValue(a, i), y = cellValue(b, i);
      const nx = Number(x), ny = Number(y);
      const c = x !== "" && y !== "" && !isNaN(nx) && !isNaN(ny) ? nx - ny : x.localeCompare(y, undefined, { numeric: true });
      return c * sign;
    });
    rows.forEach((r) => body.appendChild(r));
  }

  function resort() {
    const th = $("#images th[aria-sort]");
    if (!th) return;
    // sortBy flips the direction; flip it first to keep the current one.
    th.setAttribute("aria-sort", th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending");
    sortBy(th);
  }

  function setupDashboard() {
    const table = $("#images");
    if (!table) return;
    $$("th button.sort", table).forEach((b) => b.addEventListener("click", () => sortBy(b.closest("th"))));
    const filters = $("#filters");
    filters.addEventListener("submit", (e) => e.preventDefault());
    filters.addEventListener("input", () => {
      applyFilter();
      const p = new URLSearchParams();
      if ($("#search").value) p.set("q", $("#search").value);
      if ($("#updates-only").checked) p.set("updates", "1");
      history.replaceState(null, "", p.toString() ? "?" + p : location.pathname);
    });
    applyFilter();
    $("#check-form").addEventListener("submit", checkNow);
    // Mark as current: the rows are swapped on reload, so listen on the table.
    table.addEventListener("submit", markCurrent);
  }

  // markCurrent accepts the image now behind a listed image's tag through
  // the API, then shows the rows as they are now.
  async function markCurrent(e) {
    const form = e.target.closest("form.accept");
    if (!form) return;
    e.preventDefault();
    const button = $("button", form), flash = $("#accept-flash");
    button.disabled = true;
    const tr = form.closest("tr");
    const name = tr ? $(".name", tr).textContent.trim() : "the image";
    try {
      const a = await getJSON("/api/v1/images/" + encodeURIComponent(form.dataset.key) + "/accept", { method: "POST" });
      flash.textContent = a.accepted
        ? "Marked " + name + " as current: " + a.image.baseline.slice(0, 19) + " is its baseline now."
        : "Nothing to mark as current for " + name + ": a check cleared the update meanwhile.";
      await reloadRows();
    } catch (err) {
      flash.textContent = "Not marked as current: " + err.message;
      button.disabled = false;
    }
    flash.hidden = false;
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  async function checkNow(e) {
    e.preventDefault();
    const button = $("#check-now"), box = $("#check-progress"), bar = $("#check-bar"), text = $("#check-text");
    button.disabled = true;
    box.hidden = false;
    bar.removeAttribute("value");
    text.textContent = "Starting…";
    try {
      const before = await getJSON("/api/v1/status");
      const prev = before.last ? before.last.startedAt : null;
      const answer = await getJSON("/api/v1/check", { method: "POST" });
      if (answer.joined && answer.message) text.textContent = answer.message;
      let deadline = Date.now() + 15 * 60 * 1000;
      for (;;) {
        await sleep(400);
        const s = await getJSON("/api/v1/status");
        if (s.running) {
          bar.max = Math.max(s.total, 1);
          bar.value = s.done;
          // The summary names the registries the cycle is waiting for.
          text.textContent = s.summary || "Checking " + s.done + " / " + s.total;
          if (s.deadline) deadline = Math.max(deadline, Date.parse(s.deadline) + 60 * 1000);
        } else if (s.last && s.last.startedAt !== prev) {
          text.textContent = "Done: " + s.last.images + " checked, " + s.last.errors + " errors";
          break;
        }
        if (Date.now() > deadline) throw new Error("the check is taking long; results appear when it ends");
      }
      await reloadRows();
    } catch (err) {
      text.textContent = "Check failed: " + err.message;
    } finally {
      button.disabled = false;
      bar.value = bar.max;
    }
  }

  // reloadRows fetches the page again and swaps in its rows and summary.
  async function reloadRows() {
    const res = await fetch(location.pathname, { credentials: "same-origin" });
    const doc = new DOMParser().parseFromString(await res.text(), "text/html");
    for (const id of ["image-rows", "summary"]) {
      const fresh = doc.getElementById(id), old = document.getElementById(id);
      if (fresh && old) old.replaceWith(document.adoptNode(fresh));
    }
    // The fresh rows now live in this document, no longer in doc.
    const empty = document.getElementById("no-images");
    if (empty && document.querySelector("#image-rows tr")) empty.remove();
    resort();
    applyFilter();
  }

  // ---- Settings: busy buttons, the form's connection test ----

  function setupBusy() {
    $$("form[data-busy]").forEach((f) =>
      f.addEventListener("submit", () => {
        const b = $("button", f);
        b.textContent = f.dataset.busy;
        setTimeout(() => (b.disabled = true), 0);
      })
    );
  }

  function formInput(form) {
    const body = { kind: form.dataset.kind, name: form.elements.name.value.trim(), values: {}, clear: [], image: form.elements.image.value.trim() };
    for (const el of form.elements) {
      if (el.name && el.name.startsWith("v.")) body.values[el.name.slice(2)] = el.value;
      if (el.name === "clear" && el.checked) body.clear.push(el.value);
    }
    return body;
  }

  function showFieldErrors(form, fields) {
    $$("[data-error-for]", form).forEach((p) => {
      p.textContent = "";
      p.closest(".field").classList.remove("invalid");
    });
    const rest = [];
    for (const f of fields || []) {
      const p = $('[data-error-for="' + CSS.escape(f.field) + '"]', form);
      if (!p) {
        rest.push(f.field + " " + f.message);
        continue;
      }
      p.textContent = (p.textContent ? p.textContent + "; " : "") + f.message;
      p.closest(".field").classList.add("invalid");
    }
    return rest;
  }

  // A saved secret is only sent where it was saved for: once a field that
  // says where (url, authurl, cafile…) differs from its saved value, the
  // secret inputs stop offering to keep the saved one and say why. The
  // server refuses the same way; this only tells the admin before they post.
  function setupRebind(form) {
    const endpoints = $$("[data-endpoint]", form);
    const secrets = $$("input[data-stored]", form);
    if (!endpoints.length || !secrets.length) return;
    // A select's "not set" is false, as the server reads it.
    const norm = (el, v) => {
      v = (v || "").trim();
      return el.tagName === "SELECT" && v === "" ? "false" : v;
    };
    const update = () => {
      const changed = endpoints.filter((el) => norm(el, el.value) !== norm(el, el.dataset.saved)).map((el) => el.dataset.endpoint);
      const what = changed.length < 2 ? changed.join("") : changed.slice(0, -1).join(", ") + " and " + changed[changed.length - 1];
      for (const input of secrets) {
        const name = input.dataset.stored;
        const field = input.closest(".field");
        const note = $('[data-rebind-for="' + CSS.escape(name) + '"]', field);
        const keep = $(".keep-secret", field);
        if (!input.dataset.placeholder) input.dataset.placeholder = input.placeholder;
        if (changed.length) {
          input.placeholder = "";
          note.textContent = "The " + what + " changed: enter the " + name + " again. A saved " + name + " is only sent where it was saved for.";
          note.hidden = false;
          if (keep) keep.hidden = true;
        } else {
          input.placeholder = input.dataset.placeholder;
          note.hidden = true;
          if (keep) keep.hidden = false;
        }
      }
    };
    form.addEventListener("input", update);
    form.addEventListener("change", update);
    update();
  }

  function setupForm() {
    const form = $("#reg-form");
    if (!form) return;
    setupRebind(form);
    const out = $("#test-result");
    form.addEventListener("submit", async (e) => {
      if (!e.submitter || e.submitter.value !== "test") return;
      e.preventDefault();
      const button = e.submitter;
      button.disabled = true;
      out.className = "test-result busy";
      out.textContent = "Testing…";
      try {
        const body = formInput(form);
        const r = await getJSON("/api/v1/registries/test", {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify(body),
        });
        showFieldErrors(form, []);
        out.className = "test-result " + (r.ok ? "ok" : "fail");
        out.textContent = (r.ok
          ? "Connection ok" + (typeof r.tagCount === "number" ? " · " + r.tagCount + " tags" : "")
          : "Connection failed: " + r.error) + " · " + r.tookMs + " ms";
      } catch (err) {
        const rest = showFieldErrors(form, err.body && err.body.fields);
        out.className = "test-result fail";
        out.textContent = "Not tested: " + (rest.length ? rest.join("; ") : err.body && err.body.fields ? "fix the fields marked above" : err.message);
      } finally {
        button.disabled = false;
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    setupDashboard();
    setupBusy();
    setupForm();
  });
})();
