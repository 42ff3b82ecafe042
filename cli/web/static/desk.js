// detect serve: the verification desk page.
//
// Uploads each chosen or dropped image to /api/v1/card and draws the evidence
// card the server prepared (the same display model as the HTML report's cards).
// Everything that comes from a file is put in the page with textContent or as
// an attribute value, never parsed as markup; there are no inline handlers and
// nothing is loaded from elsewhere (see the Content-Security-Policy).
"use strict";

(function () {
  var SVG = "http://www.w3.org/2000/svg";
  var LABELS = ["ai_confirmed", "likely_ai", "inconclusive", "likely_real", "error"];
  var MEANING = {
    ai_confirmed: "The file itself declares AI generation in a way we verified (C2PA AI source type, IPTC " +
      "trainedAlgorithmicMedia, generator metadata, or a strong invisible watermark). Only provenance can give this.",
    likely_ai: "Pixel evidence at or above the calibrated “likely AI” threshold, set for 1% false positives on " +
      "real photos. Evidence, not proof.",
    inconclusive: "Between the thresholds, or the image is too small for pixel evidence.",
    likely_real: "Pixel evidence below the “likely real” threshold. Never proof that a photo is authentic: a new " +
      "generator may leave no trace we know.",
    error: "The file could not be analysed; the card says why.",
    unknown: ""
  };
  var MAX_PARALLEL = 2;

  var limits = null;
  var queue = [];
  var active = 0;
  var stats = { total: 0, finished: 0 };

  // ---- small DOM helpers (text only) -------------------------------------- //

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function labelKey(label) {
    return LABELS.indexOf(label) >= 0 ? label : "unknown";
  }

  function fmt3(v) {
    return typeof v === "number" && isFinite(v) ? v.toFixed(3) : "—";
  }

  function pct(v) {
    var x = parseFloat(v);
    if (!isFinite(x)) x = 0;
    return String(Math.min(100, Math.max(0, x)));
  }

  function bar(b, extra) {
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "bar " + extra);
    svg.setAttribute("viewBox", "0 0 100 10");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    var bg = document.createElementNS(SVG, "rect");
    bg.setAttribute("class", "bar-bg");
    bg.setAttribute("x", "0"); bg.setAttribute("y", "0"); bg.setAttribute("width", "100"); bg.setAttribute("height", "10");
    var fg = document.createElementNS(SVG, "rect");
    fg.setAttribute("class", "bar-fg");
    fg.setAttribute("x", "0"); fg.setAttribute("y", "0"); fg.setAttribute("width", pct(b.w)); fg.setAttribute("height", "10");
    svg.appendChild(bg);
    svg.appendChild(fg);
    (b.markers || []).forEach(function (m) {
      var line = document.createElementNS(SVG, "line");
      line.setAttribute("class", "bar-mark");
      line.setAttribute("x1", pct(m)); line.setAttribute("x2", pct(m));
      line.setAttribute("y1", "0"); line.setAttribute("y2", "10");
      svg.appendChild(line);
    });
    return svg;
  }

  function kv(pairs) {
    var dl = el("dl", "kv");
    if (!pairs || !pairs.length) {
      dl.appendChild(el("dt", null, "—"));
      dl.appendChild(el("dd", null, "none"));
    }
    (pairs || []).forEach(function (p) {
      dl.appendChild(el("dt", null, p[0]));
      dl.appendChild(el("dd", null, p[1]));
    });
    return dl;
  }

  function image(uri, alt, w, h) {
    var img = document.createElement("img");
    if (typeof uri === "string" && /^data:image\/(png|jpeg|webp);base64,/.test(uri)) img.src = uri;
    img.alt = alt;
    if (w) img.width = w;
    if (h) img.height = h;
    return img;
  }

  function details(summaryText, muted, body) {
    var d = el("details");
    var s = el("summary", null, summaryText);
    if (muted) { s.appendChild(document.createTextNode(" ")); s.appendChild(el("span", "muted", muted)); }
    d.appendChild(s);
    d.appendChild(body);
    return d;
  }

  function download(content, type, filename) {
    var url = URL.createObjectURL(new Blob([content], { type: type }));
    var a = document.createElement("a");
    a.href = url;
    a.download = filename;
    a.hidden = true;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 30000);
  }

  // ---- the evidence card (mirrors cli/templates/report.html) -------------- //

  function provenancePanel(p, images) {
    var div = el("div", "provenance");
    var h = el("h4", null, "Provenance: " + p.name + " ");
    h.appendChild(el("span", "claim claim-" + String(p.claim).replace(/[^a-z_]/g, ""), p.claim));
    h.appendChild(document.createTextNode(" "));
    h.appendChild(el("span", "muted", "strength: " + p.strength));
    div.appendChild(h);
    if (p.summary) div.appendChild(el("p", null, p.summary));
    if (p.thumb_key && images[p.thumb_key]) {
      var fig = el("figure", "vis prov-thumb");
      fig.appendChild(image(images[p.thumb_key], "Embedded thumbnail from the file's metadata"));
      fig.appendChild(el("figcaption", null, "Embedded thumbnail"));
      div.appendChild(fig);
    }
    if (p.c2pa && p.c2pa.length) {
      div.appendChild(el("h5", null, "Content credentials (C2PA)"));
      div.appendChild(kv(p.c2pa));
    }
    if (p.bits && p.bits.length) {
      div.appendChild(el("h5", null, "Watermark bits"));
      var t = el("table", "small");
      var hr = el("tr");
      [["Message", ""], ["Matched", "num"], ["Total", "num"], ["Order", "num"], ["Band", ""]].forEach(function (c) {
        hr.appendChild(el("th", c[1], c[0]));
      });
      t.appendChild(el("thead")).appendChild(hr);
      var tb = t.appendChild(el("tbody"));
      p.bits.forEach(function (b) {
        var tr = el("tr");
        tr.appendChild(el("td", null, b.msg));
        tr.appendChild(el("td", "num", b.matched));
        tr.appendChild(el("td", "num", b.total));
        tr.appendChild(el("td", "num", b.order));
        tr.appendChild(el("td", null, b.band));
        tb.appendChild(tr);
      });
      div.appendChild(t);
    }
    if ((p.generator && p.generator.length) || p.raw) {
      var body = el("div");
      if (p.generator && p.generator.length) body.appendChild(kv(p.generator));
      if (p.raw) body.appendChild(el("pre", null, p.raw));
      div.appendChild(details("Generator parameters", null, body));
    }
    return div;
  }

  function detectorTable(dets) {
    var t = el("table", "detectors");
    var hr = el("tr");
    [["Detector", ""], ["Status", ""], ["Score vs threshold", "barcol"], ["Score", "num"], ["Threshold", "num"], ["Claim", ""]]
      .forEach(function (c) { hr.appendChild(el("th", c[1], c[0])); });
    t.appendChild(el("thead")).appendChild(hr);
    var tb = t.appendChild(el("tbody"));
    dets.forEach(function (d) {
      var tr = el("tr");
      var name = el("td");
      name.appendChild(el("strong", null, d.name));
      name.appendChild(el("br"));
      name.appendChild(el("span", "muted", d.version));
      tr.appendChild(name);
      tr.appendChild(el("td", null, d.status));
      var bc = el("td", "barcol");
      if (d.bar) bc.appendChild(bar(d.bar, d.over ? "over" : "under"));
      else bc.appendChild(el("span", "muted", "no score"));
      tr.appendChild(bc);
      tr.appendChild(el("td", "num", d.score));
      tr.appendChild(el("td", "num", d.threshold));
      var claim = el("td", null, d.claim);
      if (d.strength && d.strength !== "none") {
        claim.appendChild(document.createTextNode(" "));
        claim.appendChild(el("span", "muted", "(" + d.strength + ")"));
      }
      tr.appendChild(claim);
      tb.appendChild(tr);
      if (d.message || (d.explanations && d.explanations.length)) {
        var nr = el("tr", "det-notes");
        var td = el("td");
        td.colSpan = 6;
        if (d.message) td.appendChild(el("p", "muted", d.message));
        (d.explanations || []).forEach(function (e) { td.appendChild(el("p", null, e)); });
        nr.appendChild(td);
        tb.appendChild(nr);
      }
    });
    return t;
  }

  function renderCard(resp) {
    var c = resp.card || {};
    var images = resp.images || {};
    var record = resp.record || {};
    var label = labelKey(c.label);
    var art = el("article", "card l-" + label);
    art.dataset.label = label;

    var head = el("header", "card-head");
    head.appendChild(el("span", "badge l-" + label, c.label_text));
    head.appendChild(el("h3", "path", c.path));
    var score = el("span", "score", "P(AI) ");
    score.appendChild(el("strong", null, c.score));
    head.appendChild(score);
    var actions = el("span", "actions");
    var bHtml = el("button", "dl dl-html", "Download card (HTML)");
    bHtml.type = "button";
    bHtml.addEventListener("click", function () {
      download(resp.report_html, "text/html;charset=utf-8", resp.download_name + ".card.html");
    });
    var bJson = el("button", "dl dl-json", "Download record (JSON)");
    bJson.type = "button";
    bJson.addEventListener("click", function () {
      download(JSON.stringify(record, null, 2) + "\n", "application/json", resp.download_name + ".record.json");
    });
    actions.appendChild(bHtml);
    actions.appendChild(bJson);
    head.appendChild(actions);
    art.appendChild(head);

    var meaning = el("p", "meaning", MEANING[label]);
    var cal = record.calibration;
    if (cal && label !== "error") {
      meaning.appendChild(el("span", "muted", " Thresholds: likely real below " + fmt3(cal.likely_real) +
        ", likely AI at or above " + fmt3(cal.likely_ai) + "."));
    }
    art.appendChild(meaning);

    var body = el("div", "card-body");
    var vis = el("div", "visuals");
    if (!c.figures || !c.figures.length) vis.appendChild(el("p", "muted", "No image preview."));
    (c.figures || []).forEach(function (f) {
      var fig = el("figure", "vis vis-" + String(f.kind).replace(/[^a-z]/g, ""));
      fig.appendChild(image(images[f.key], f.caption, f.w, f.h));
      fig.appendChild(el("figcaption", null, f.caption));
      vis.appendChild(fig);
    });
    body.appendChild(vis);

    var info = el("div", "info");
    if (c.bar) {
      var ov = el("div", "overall");
      ov.appendChild(bar(c.bar, "overall"));
      ov.appendChild(el("span", "muted", "score " + c.score + "; markers: “likely real” and “likely AI” thresholds"));
      info.appendChild(ov);
    }
    if (c.decided_by && c.decided_by !== "—") info.appendChild(el("p", "decided muted", "Decided by: " + c.decided_by));
    if (c.error) {
      var err = el("div", "error");
      err.appendChild(el("strong", null, "Error " + c.error.code + ":"));
      err.appendChild(document.createTextNode(" " + c.error.message));
      info.appendChild(err);
    }
    if (c.explanations && c.explanations.length) {
      var ul = el("ul", "explanations");
      c.explanations.forEach(function (e) { ul.appendChild(el("li", null, e)); });
      info.appendChild(ul);
    }
    if (c.flags && c.flags.length) {
      var fl = el("div", "flags");
      fl.appendChild(el("h4", null, "Quality flags"));
      var ful = el("ul");
      c.flags.forEach(function (q) {
        var li = el("li");
        li.appendChild(el("code", null, q.code));
        li.appendChild(document.createTextNode(" " + q.message));
        ful.appendChild(li);
      });
      fl.appendChild(ful);
      info.appendChild(fl);
    }
    (c.provenance || []).forEach(function (p) { info.appendChild(provenancePanel(p, images)); });
    if (c.detectors && c.detectors.length) info.appendChild(detectorTable(c.detectors));
    info.appendChild(details("File metadata", null, kv(c.meta)));
    (c.detectors || []).forEach(function (d) {
      info.appendChild(details("Evidence: " + d.name, "(" + d.time + " s)", el("pre", null, d.evidence)));
    });
    body.appendChild(info);
    art.appendChild(body);
    return art;
  }

  function pendingCard(name, text) {
    var art = el("article", "card pending l-unknown");
    var head = el("header", "card-head");
    head.appendChild(el("span", "badge l-unknown", "Waiting"));
    head.appendChild(el("h3", "path", name));
    head.appendChild(el("span", "muted state", text));
    art.appendChild(head);
    return art;
  }

  function setPending(slot, badge, text) {
    slot.querySelector(".badge").textContent = badge;
    slot.querySelector(".state").textContent = text;
  }

  function refusalCard(name, code, message) {
    var art = el("article", "card refused l-error");
    art.dataset.label = "refused";
    var head = el("header", "card-head");
    head.appendChild(el("span", "badge l-error", "Not analysed"));
    head.appendChild(el("h3", "path", name));
    art.appendChild(head);
    var err = el("div", "error");
    err.appendChild(el("strong", null, "Refused (" + code + "):"));
    err.appendChild(document.createTextNode(" " + message));
    art.appendChild(err);
    return art;
  }

  // ---- uploading ---------------------------------------------------------- //

  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }

  function progress() {
    document.getElementById("toolbar").hidden = stats.total === 0;
    document.getElementById("progress").textContent =
      stats.finished + " of " + stats.total + " image" + (stats.total === 1 ? "" : "s") + " done";
  }

  function finish(slot, node) {
    slot.replaceWith(node);
    stats.finished += 1;
    progress();
  }

  async function upload(file, slot) {
    if (limits && file.size > limits.max_bytes) {
      finish(slot, refusalCard(file.name, "too_large", "the file is " + mb(file.size) + "; the limit is " +
        mb(limits.max_bytes) + " (detect serve --max-mb changes it)"));
      return;
    }
    for (var attempt = 0; attempt < 8; attempt++) {
      setPending(slot, "Analysing", attempt ? "retrying…" : "uploading and analysing…");
      var form = new FormData();
      form.append("file", file, file.name);
      var resp;
      try {
        resp = await fetch("/api/v1/card", { method: "POST", body: form, cache: "no-store", credentials: "same-origin" });
      } catch (e) {
        finish(slot, refusalCard(file.name, "no_answer", "the local server did not answer: is detect serve still running?"));
        return;
      }
      if (resp.status === 503) {
        var wait = Math.min(60, Math.max(1, parseInt(resp.headers.get("Retry-After") || "2", 10) || 2));
        setPending(slot, "Queued", "server busy; retrying in " + wait + " s");
        await sleep(wait * 1000);
        continue;
      }
      var body = null;
      try { body = await resp.json(); } catch (e) { body = null; }
      if (resp.ok && body && body.card) {
        finish(slot, renderCard(body));
      } else {
        var detail = body && typeof body.detail === "string" ? body.detail : "the server answered " + resp.status;
        finish(slot, refusalCard(file.name, (body && body.code) || String(resp.status), detail));
      }
      return;
    }
    finish(slot, refusalCard(file.name, "busy", "the server stayed busy; try this file again later"));
  }

  function pump() {
    var parallel = Math.max(1, Math.min(MAX_PARALLEL, limits ? limits.max_concurrent : 1));
    while (active < parallel && queue.length) {
      var job = queue.shift();
      active += 1;
      upload(job.file, job.slot).finally(function () { active -= 1; pump(); });
    }
  }

  function handle(files) {
    if (!files || !files.length) return;
    var results = document.getElementById("results");
    var batch = document.createDocumentFragment();
    Array.prototype.forEach.call(files, function (file) {
      var slot = pendingCard(file.name, "waiting for its turn…");
      batch.appendChild(slot);
      queue.push({ file: file, slot: slot });
      stats.total += 1;
    });
    results.insertBefore(batch, results.firstChild);
    progress();
    pump();
  }

  function mb(n) {
    return (n / (1024 * 1024)).toFixed(n >= 10 * 1024 * 1024 ? 0 : 1) + " MB";
  }

  // ---- wiring ------------------------------------------------------------- //

  function init() {
    document.documentElement.classList.add("js");
    var zone = document.getElementById("dropzone");
    var input = document.getElementById("files");
    input.addEventListener("change", function () {
      handle(input.files);
      input.value = "";
    });
    // Dropping anywhere on the page uploads (and never navigates away to the file).
    window.addEventListener("dragover", function (e) { e.preventDefault(); zone.classList.add("over"); });
    window.addEventListener("dragleave", function (e) { if (!e.relatedTarget) zone.classList.remove("over"); });
    window.addEventListener("drop", function (e) {
      e.preventDefault();
      zone.classList.remove("over");
      if (e.dataTransfer) handle(e.dataTransfer.files);
    });
    document.getElementById("clear").addEventListener("click", function () {
      document.querySelectorAll("#results .card:not(.pending)").forEach(function (n) { n.remove(); });
      stats.total -= stats.finished;
      stats.finished = 0;
      progress();
    });
    fetch("/api/v1/limits", { cache: "no-store" }).then(function (r) { return r.json(); }).then(function (l) {
      limits = l;
      document.getElementById("limits").textContent = "Up to " + mb(l.max_bytes) + " and " +
        Math.round(l.max_pixels / 1e6) + " megapixels per image. " + l.formats.join(", ") + ".";
      pump();
    }).catch(function () { /* the server checks the limits anyway */ });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
