// detect serve: a minimal, self-hosted view of /openapi.json (text only).
"use strict";

(function () {
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function render(spec) {
    var main = document.getElementById("endpoints");
    main.textContent = "";
    if (spec.info) {
      main.appendChild(el("p", "desc", spec.info.description || ""));
      main.appendChild(el("p", "muted", "Version " + (spec.info.version || "?") + ", OpenAPI " + (spec.openapi || "?")));
    }
    Object.keys(spec.paths || {}).forEach(function (path) {
      var ops = spec.paths[path];
      Object.keys(ops).forEach(function (method) {
        var op = ops[method];
        var sec = el("section", "endpoint");
        var h = el("h2");
        h.appendChild(el("span", "method " + (method === "post" ? "post" : "get"), method.toUpperCase()));
        h.appendChild(document.createTextNode(path));
        sec.appendChild(h);
        if (op.summary) sec.appendChild(el("p", null, op.summary));
        if (op.description) sec.appendChild(el("p", "desc", op.description));
        var body = op.requestBody && op.requestBody.content;
        if (body) {
          sec.appendChild(el("h4", null, "Request body"));
          Object.keys(body).forEach(function (ct) {
            var props = (body[ct].schema && body[ct].schema.properties) || {};
            var dl = el("dl", "kv");
            dl.appendChild(el("dt", null, "content type"));
            dl.appendChild(el("dd", null, ct));
            Object.keys(props).forEach(function (name) {
              dl.appendChild(el("dt", null, "field " + name));
              dl.appendChild(el("dd", null, props[name].description || props[name].type || ""));
            });
            sec.appendChild(dl);
          });
        }
        sec.appendChild(el("h4", null, "Responses"));
        var t = el("table", "small");
        var tb = t.appendChild(el("tbody"));
        Object.keys(op.responses || {}).forEach(function (code) {
          var tr = el("tr");
          tr.appendChild(el("td", null, code));
          tr.appendChild(el("td", "desc", op.responses[code].description || ""));
          tb.appendChild(tr);
        });
        sec.appendChild(t);
        main.appendChild(sec);
      });
    });
  }

  fetch("/openapi.json", { cache: "no-store" })
    .then(function (r) { return r.json(); })
    .then(render)
    .catch(function (e) { document.getElementById("endpoints").textContent = "Could not load /openapi.json: " + e; });
})();
