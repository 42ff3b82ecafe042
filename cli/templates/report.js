(function () {
  "use strict";
  // Sorting, filtering and paging for the scan report. Record data is only ever
  // put into the page with textContent / setAttribute, never parsed as markup.
  var doc = document;
  var data;
  try {
    data = JSON.parse(doc.getElementById("data").textContent);
  } catch (e) {
    return;
  }
  doc.documentElement.classList.add("js");

  var items = data.items || [];
  var images = data.images || [];
  var pageSize = Math.max(1, data.page_size | 0) || 50;
  var n = items.length;
  var tbody = doc.querySelector("#table tbody");
  var container = doc.getElementById("cards");
  var filterEl = doc.getElementById("filter");
  var shownEl = doc.getElementById("shown");
  var pagers = doc.querySelectorAll(".pager");
  var uriRe = /^data:image\/(png|jpeg|webp);base64,[A-Za-z0-9+\/=]+$/;
  var collator = (typeof Intl !== "undefined" && Intl.Collator) ? new Intl.Collator(undefined, { numeric: true, sensitivity: "base" }) : null;

  var rows = new Array(n), cards = new Array(n), order = new Array(n);
  for (var i = 0; i < n; i++) {
    rows[i] = doc.getElementById("row-" + i);
    cards[i] = doc.getElementById("img-" + i);
    order[i] = i;
  }
  var filter = "all", page = 0, visible = order.slice();
  var sortKey = null, sortDir = 1;

  function matches(i) { return filter === "all" || items[i].l === filter; }

  function compare(a, b) {
    var x = items[a][sortKey], y = items[b][sortKey];
    var nx = x === null || x === undefined, ny = y === null || y === undefined;
    if (nx || ny) { return nx && ny ? a - b : (nx ? 1 : -1); } // missing values last
    var c;
    if (typeof x === "string" && typeof y === "string") {
      c = collator ? collator.compare(x, y) : (x < y ? -1 : x > y ? 1 : 0);
    } else {
      c = x < y ? -1 : x > y ? 1 : 0;
    }
    return c ? c * sortDir : a - b;
  }

  function loadImages(i) {
    var card = cards[i], uris = images[i] || {};
    if (!card || card.getAttribute("data-loaded")) { return; }
    var imgs = card.querySelectorAll("img[data-k]");
    for (var j = 0; j < imgs.length; j++) {
      var u = uris[imgs[j].getAttribute("data-k")];
      if (typeof u === "string" && uriRe.test(u)) {
        imgs[j].setAttribute("src", u);
        imgs[j].hidden = false;
      }
    }
    card.setAttribute("data-loaded", "1");
  }

  function pageCount() { return Math.max(1, Math.ceil(visible.length / pageSize)); }

  function showPage() {
    var pages = pageCount();
    page = Math.min(Math.max(page, 0), pages - 1);
    for (var i = 0; i < n; i++) { if (cards[i]) { cards[i].hidden = true; } }
    var frag = doc.createDocumentFragment();
    var slice = visible.slice(page * pageSize, (page + 1) * pageSize);
    for (var k = 0; k < slice.length; k++) {
      var c = cards[slice[k]];
      if (!c) { continue; }
      loadImages(slice[k]);
      c.hidden = false;
      frag.appendChild(c);
    }
    container.appendChild(frag);
    var text = visible.length
      ? "Page " + (page + 1) + " of " + pages + " (cards " + (page * pageSize + 1) + "–" + (page * pageSize + slice.length) + " of " + visible.length + ")"
      : "No images match the filter.";
    for (var p = 0; p < pagers.length; p++) {
      pagers[p].hidden = false;
      pagers[p].querySelector(".page-text").textContent = text;
      pagers[p].querySelector('[data-page="first"]').disabled = page === 0;
      pagers[p].querySelector('[data-page="prev"]').disabled = page === 0;
      pagers[p].querySelector('[data-page="next"]').disabled = page >= pages - 1;
      pagers[p].querySelector('[data-page="last"]').disabled = page >= pages - 1;
    }
  }

  function update() {
    visible = [];
    var frag = doc.createDocumentFragment();
    for (var k = 0; k < n; k++) {
      var i = order[k], ok = matches(i);
      if (ok) { visible.push(i); }
      if (rows[i]) { rows[i].hidden = !ok; frag.appendChild(rows[i]); }
    }
    tbody.appendChild(frag);
    shownEl.textContent = visible.length + " of " + n + " shown";
    showPage();
  }

  function setFilter(value) {
    filter = value;
    filterEl.value = value;
    page = 0;
    update();
  }

  function goTo(i) {
    if (!(i >= 0 && i < n)) { return; }
    if (!matches(i)) { setFilter("all"); }
    var pos = visible.indexOf(i);
    if (pos < 0) { return; }
    page = Math.floor(pos / pageSize);
    showPage();
    if (cards[i]) { cards[i].scrollIntoView(); }
  }

  function indexFromHash(hash) {
    var m = /^#img-(\d+)$/.exec(hash || "");
    return m ? parseInt(m[1], 10) : -1;
  }

  // Sorting.
  var ths = doc.querySelectorAll("#table thead th[data-key]");
  for (var t = 0; t < ths.length; t++) {
    ths[t].querySelector("button").addEventListener("click", function (ev) {
      var th = ev.currentTarget.parentNode, key = th.getAttribute("data-key");
      sortDir = (sortKey === key) ? -sortDir : 1;
      sortKey = key;
      order.sort(compare);
      for (var u = 0; u < ths.length; u++) { ths[u].setAttribute("aria-sort", "none"); }
      th.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
      page = 0;
      update();
    });
  }

  // Filtering.
  filterEl.addEventListener("change", function () { setFilter(filterEl.value); });
  var countButtons = doc.querySelectorAll("[data-filter]");
  for (var b = 0; b < countButtons.length; b++) {
    countButtons[b].addEventListener("click", function (ev) {
      var v = ev.currentTarget.getAttribute("data-filter");
      setFilter(filter === v ? "all" : v);
      doc.getElementById("summary").scrollIntoView();
    });
  }

  // Paging.
  for (var q = 0; q < pagers.length; q++) {
    pagers[q].addEventListener("click", function (ev) {
      var btn = ev.target.closest ? ev.target.closest("button[data-page]") : null;
      if (!btn) { return; }
      var what = btn.getAttribute("data-page");
      if (what === "first") { page = 0; }
      else if (what === "prev") { page -= 1; }
      else if (what === "next") { page += 1; }
      else if (what === "last") { page = pageCount() - 1; }
      showPage();
      pagers[0].scrollIntoView();
    });
  }

  // Links from the table to cards on other pages.
  doc.addEventListener("click", function (ev) {
    var a = ev.target.closest ? ev.target.closest('a[href^="#img-"]') : null;
    if (!a) { return; }
    var i = indexFromHash(a.getAttribute("href"));
    if (i < 0) { return; }
    ev.preventDefault();
    goTo(i);
    try { history.replaceState(null, "", "#img-" + i); } catch (e) { /* file: URLs may refuse */ }
  });
  window.addEventListener("hashchange", function () {
    var i = indexFromHash(location.hash);
    if (i >= 0) { goTo(i); }
  });

  doc.getElementById("controls").hidden = false;
  update();
  var start = indexFromHash(location.hash);
  if (start >= 0) { goTo(start); }
})();
