(function () {
  "use strict";
  var errBox = document.getElementById("js-errors");
  window.addEventListener("error", function (e) {
    errBox.hidden = false;
    errBox.textContent += "JavaScript error: " + e.message + "\n";
  });

  var DATA = JSON.parse(document.getElementById("transcript-data").textContent);
  var RECS = DATA.records || [];
  var TASK = (DATA.header && DATA.header.task) || {};
  var TI_ID = TASK.ti && TASK.ti.id ? String(TASK.ti.id) : "";
  var RUN_ID = TASK.run_id ? String(TASK.run_id) : "";
  var rowsEl = document.getElementById("rows");
  var details = document.getElementById("details");
  var detailsBody = document.getElementById("details-body");
  var detailsTitle = document.getElementById("details-title");

  var REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
    301: "Moved", 302: "Found", 304: "Not Modified", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    409: "Conflict", 410: "Gone", 413: "Too Large", 422: "Unprocessable",
    429: "Too Many Requests", 500: "Server Error", 502: "Bad Gateway",
    503: "Unavailable", 504: "Gateway Timeout"};

  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined && text !== null) n.textContent = String(text);
    return n;
  }
  function add(parent, tag, cls, text) {
    var n = el(tag, cls, text);
    parent.appendChild(n);
    return n;
  }
  function isObj(v) { return v !== null && typeof v === "object" && !Array.isArray(v); }
  function tagged(v) {
    if (!isObj(v)) return null;
    var ks = Object.keys(v);
    if (ks.length !== 1 || ks[0].charAt(0) !== "$") return null;
    var k = ks[0], x = v[k];
    if (k === "$ts") return String(x);
    if (k === "$float") return String(x);
    if (k === "$bytes") return "b64:" + String(x);
    return null;
  }
  function short(v) {
    var t = tagged(v);
    if (t !== null) return t;
    if (typeof v === "string") return v;
    var s = JSON.stringify(v);
    return s === undefined ? String(v) : s;
  }
  function clip(s, n) { return s.length > n ? s.slice(0, n - 1) + "…" : s; }
  function summary(body, limit) {
    if (!isObj(body)) return "";
    var parts = [];
    Object.keys(body).forEach(function (k) {
      if (k === "type" || k === "ti_context") return;
      var v = body[k], text;
      if (k === "ti" && isObj(v)) text = v.dag_id + "." + v.task_id + " try " + v.try_number;
      else text = short(v);
      parts.push(k + "=" + clip(text, 40));
    });
    return clip(parts.join(" "), limit || 110);
  }
  function fmtT(t) { return typeof t === "number" ? t.toFixed(3) : ""; }
  // Long ids make paths unreadable in a label: whole path segments (or query values) equal to
  // the task instance id or the run id are shown as {ti} / {run_id}; the details keep them.
  var SUBST = {};
  if (TI_ID) SUBST[TI_ID] = "{ti}";
  if (RUN_ID) { SUBST[RUN_ID] = "{run_id}"; SUBST[encodeURIComponent(RUN_ID)] = "{run_id}"; }
  function shortPath(p) {
    return String(p).replace(/[^\/?&=]+/g, function (seg) {
      return Object.prototype.hasOwnProperty.call(SUBST, seg) ? SUBST[seg] : seg;
    });
  }
  function httpType(r) { return r.method + " " + r.path; }
  function statusClass(s) { return typeof s === "number" ? "s" + String(s).charAt(0) : "sx"; }

  // ---- rows -------------------------------------------------------------------------------
  var seqIndex = {};       // seq -> record index
  var arrowsBySeq = {};    // seq -> [elements]
  var frameReply = {};     // request index -> reply index
  var replyOf = {};        // reply index -> request index
  var causedBy = {};       // frame seq -> [http indexes]
  var open = {};           // frame id -> request index, while its exchange is open
  var openCount = 0;

  RECS.forEach(function (r, i) {
    if (typeof r.seq === "number") seqIndex[r.seq] = i;
    if (r.record === "http" && typeof r.cause === "number") {
      (causedBy[r.cause] = causedBy[r.cause] || []).push(i);
    }
  });

  function row(kind, t) {
    var r = el("div", "row " + kind);
    add(r, "div", "t", fmtT(t));
    var d = add(r, "div", "d");
    var m = add(r, "div", "m");
    return {row: r, d: d, m: m};
  }
  function activation(d, state) {
    if (state) d.appendChild(el("div", "act " + state));
  }
  function arrow(spec) {
    var a = el("div", "arrow " + spec.kind + " " + spec.span + " " + spec.dir +
      (spec.cls ? " " + spec.cls : ""));
    a.setAttribute("data-kind", spec.kind);
    a.setAttribute("data-type", spec.type);
    a.setAttribute("data-seq", String(spec.seq));
    a.setAttribute("data-i", String(spec.i));
    a.setAttribute("tabindex", "0");
    a.setAttribute("role", "button");
    var label = add(a, "div", "label");
    spec.label.forEach(function (part) {
      if (part && part[1] !== "" && part[1] !== null && part[1] !== undefined) {
        label.appendChild(el("span", part[0], part[1]));
        if (part[2] !== "tight") label.appendChild(document.createTextNode(" "));
      }
    });
    a.title = label.textContent.trim();
    add(a, "div", "line");
    (arrowsBySeq[spec.seq] = arrowsBySeq[spec.seq] || []).push(a);
    return a;
  }

  var frag = document.createDocumentFragment();
  var lastT = null;

  var parity = "ex-b";
  function place(parts, actState) {
    if (actState === "start") parity = parity === "ex-a" ? "ex-b" : "ex-a";
    if (openCount > 0 || actState) parts.row.classList.add("in-ex", parity);
    activation(parts.d, actState || (openCount > 0 ? "mid" : ""));
    frag.appendChild(parts.row);
  }

  RECS.forEach(function (r, i) {
    var kind = r.record;
    var t = typeof r.t === "number" ? r.t : null;
    if (t !== null && lastT !== null && t - lastT >= 1.0) {
      var g = row("r-gap", null);
      g.d.textContent = "⋯ " + (t - lastT).toFixed(2) + " s later ⋯";
      if (openCount > 0) { g.row.classList.add("in-ex", parity); activation(g.d, "mid"); }
      frag.appendChild(g.row);
    }
    if (t !== null) lastT = t;
    var p, label;

    if (kind === "frame") {
      var isIn = r.dir === "in";
      var type = r.type || (isIn ? "undecodable" : "ack");
      if (isIn) {
        label = [["ty", type], ["id", "#" + r.id]];
        var cls = "";
        if (r.decode_error) { cls = "err"; label.push(["sum", "undecodable: " + r.decode_error]); }
        else label.push(["sum", summary(r.body, 110)]);
        p = row("r-arrow r-frame", t);
        p.d.appendChild(arrow({kind: "request", span: "span-rs", dir: "ltr", type: type,
          seq: r.seq, i: i, cls: cls, label: label}));
        var state = "";
        if (!r.decode_error && r.id !== null && r.id !== undefined) {
          if (open[r.id] === undefined) openCount += 1;
          open[r.id] = i;
          state = "start";
        }
        place(p, state);
      } else {
        var rcls = "dashed";
        var err = r.error;
        if (r.decode_error) {
          rcls += " err";
          label = [["ty", type], ["id", "#" + r.id], ["sum", "undecodable: " + r.decode_error]];
        } else if (err !== undefined && err !== null) {
          rcls += " err";
          var msg = isObj(err) ? (err.error || "error") : short(err);
          var det = isObj(err) && isObj(err.detail) ? summary(err.detail, 90) : "";
          label = [["ty", "error " + msg], ["id", "#" + r.id], ["sum", det]];
        } else if (!r.type) {
          rcls += " ack";
          label = [["ty", "ack"], ["id", "#" + r.id]];
        } else if (r.type === "ErrorResponse") {
          rcls += " body-error";
          label = [["ty", "ErrorResponse"], ["id", "#" + r.id],
            ["sum", isObj(r.body) ? short(r.body.error) + " " +
              (r.body.detail ? summary(r.body.detail, 70) : "") : ""]];
        } else {
          label = [["ty", type], ["id", "#" + r.id], ["sum", summary(r.body, 100)]];
        }
        p = row("r-arrow r-frame", t);
        p.d.appendChild(arrow({kind: "reply", span: "span-rs", dir: "rtl", type: type,
          seq: r.seq, i: i, cls: rcls, label: label}));
        var ostate = "";
        if (r.id !== null && r.id !== undefined && open[r.id] !== undefined) {
          frameReply[open[r.id]] = i;
          replyOf[i] = open[r.id];
          delete open[r.id];
          openCount -= 1;
          ostate = "end";
        }
        place(p, ostate);
      }
    } else if (kind === "http") {
      var hb = r.cause === "heartbeat" ? " hb" : "";
      var q = r.query ? "?" + r.query : "";
      var tag = typeof r.cause === "number" ? "" : String(r.cause);
      p = row("r-arrow r-http" + hb, t);
      p.d.appendChild(arrow({kind: "http-request", span: "span-sa", dir: "ltr",
        type: httpType(r), seq: r.seq, i: i, cls: typeof r.cause === "number" ? "nested" : "",
        label: [["tag", tag], ["ty", r.method], ["path", shortPath(r.path), "tight"],
          ["q", clip(shortPath(q), 60)], ["id", r.attempt > 1 ? "attempt " + r.attempt : ""]]}));
      place(p, "");
      var sc = statusClass(r.status);
      var stext = typeof r.status === "number"
        ? r.status + (REASONS[r.status] ? " " + REASONS[r.status] : "")
        : "transport error";
      var dur = typeof r.duration_s === "number" ? (r.duration_s * 1000).toFixed(1) + " ms" : "";
      p = row("r-arrow r-http" + hb, null);
      p.d.appendChild(arrow({kind: "http-response", span: "span-sa", dir: "rtl",
        type: httpType(r), seq: r.seq, i: i, cls: "dashed " + sc,
        label: [["status " + sc, stext], ["sum", r.error ? clip(String(r.error), 60) : ""],
          ["dur", dur]]}));
      place(p, "");
    } else if (kind === "log") {
      var line = isObj(r.line) ? r.line : {event: short(r.line)};
      var level = String(line.level || "info").toLowerCase();
      p = row("r-log", t);
      var lg = add(p.m, "div", "log lvl-" + level + " src-" + r.source);
      lg.setAttribute("data-i", String(i));
      add(lg, "span", "src", r.source);
      add(lg, "span", "lvl", level.toUpperCase());
      if (line.logger) add(lg, "span", "lg-name", line.logger);
      add(lg, "span", "ev", short(line.event === undefined ? "" : line.event));
      var kv = [];
      var skip = {level: 1, event: 1, timestamp: 1, logger: 1, ti_id: 1, dag_id: 1, task_id: 1,
        run_id: 1, try_number: 1, map_index: 1};
      Object.keys(line).forEach(function (k) {
        if (!skip[k]) kv.push(k + "=" + clip(short(line[k]), 200));
      });
      if (kv.length) add(lg, "span", "kv", kv.join(" "));
      place(p, "");
    } else if (kind === "violation") {
      var v = el("div", "row r-violation");
      v.setAttribute("data-i", String(i));
      v.setAttribute("data-violation", String(r.rule));
      add(v, "div", "vt", fmtT(t));
      var head = add(v, "div", "vhead");
      head.appendChild(document.createTextNode("⚠ VIOLATION"));
      add(head, "span", "vrule", r.rule);
      add(head, "span", "vmsg", r.message);
      var af = add(v, "div", "vairflow");
      add(af, "b", "", "Airflow: ");
      af.appendChild(document.createTextNode(short(r.airflow === undefined ? "" : r.airflow)));
      if (r.frame_id !== undefined && r.frame_id !== null) {
        af.appendChild(document.createTextNode("  (frame #" + r.frame_id + ")"));
      }
      frag.appendChild(v);
    } else if (kind === "process") {
      p = row("r-proc", t);
      var ev = String(r.event), dim = "", ncls = "note on-rt proc-" + ev;
      if (ev === "spawn") dim = "pid " + r.pid + "  " + (r.argv || []).join(" ");
      else if (ev === "connect" || ev === "reject") dim = r.channel + " ← " + r.peer;
      else if (ev === "signal") {
        dim = r.signal + " → " + r.target + (r.reason ? "  (" + r.reason + ")" : "");
      } else if (ev === "eof") { dim = r.channel; ncls += " proc-minor"; }
      else if (ev === "channel-bytes") {
        dim = r.channel + ": " + r.received + " bytes received" +
          (r.discarded ? ", " + r.discarded + " discarded" : "");
        ncls += " proc-minor";
      } else if (ev === "exit") {
        var ok = r.exit_code === 0 && !r.signal;
        ncls += ok ? " exit-ok" : " exit-bad";
        dim = (r.exit_code !== undefined && r.exit_code !== null ? "code " + r.exit_code : "") +
          (r.signal ? " signal " + r.signal : "") + (r.message ? "  " + r.message : "");
      } else {
        dim = Object.keys(r).filter(function (k) {
          return ["record", "seq", "t", "event"].indexOf(k) < 0;
        }).map(function (k) { return k + "=" + short(r[k]); }).join(" ");
      }
      var note = add(p.d, "div", ncls);
      note.setAttribute("data-i", String(i));
      add(note, "span", "ev", ev);
      note.appendChild(document.createTextNode(" "));
      add(note, "span", "dim", dim);
      note.title = note.textContent;
      place(p, "");
      if (ev === "exit" && openCount > 0) { open = {}; openCount = 0; }
    } else if (kind === "note") {
      p = row("r-note", t);
      var nlvl = String(r.level || "info").toLowerCase();
      var sn = add(p.d, "div", "note on-sup sup-note lvl-" + nlvl);
      sn.setAttribute("data-i", String(i));
      add(sn, "span", "ev", nlvl);
      sn.appendChild(document.createTextNode(" "));
      add(sn, "span", "", short(r.message === undefined ? "" : r.message));
      sn.title = sn.textContent;
      place(p, "");
    } else {
      p = row("r-log", t);
      var o = add(p.m, "div", "log");
      o.setAttribute("data-i", String(i));
      add(o, "span", "src", String(kind));
      add(o, "span", "ev", clip(JSON.stringify(r), 300));
      place(p, "");
    }
  });
  rowsEl.appendChild(frag);

  // ---- details panel ------------------------------------------------------------------------
  function jsonPre(value, cls) {
    var pre = el("pre", "json" + (cls ? " " + cls : ""));
    var text = JSON.stringify(value, null, 2);
    if (text === undefined) text = String(value);
    if (text.length > 400000) { pre.textContent = text; return pre; }
    var re = /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;
    var last = 0, m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) pre.appendChild(document.createTextNode(text.slice(last, m.index)));
      var c = m[1] ? (m[2] ? (m[1].charAt(1) === "$" ? "j-tag" : "j-key") : "j-str")
        : (m[3] ? "j-lit" : "j-num");
      pre.appendChild(el("span", c, m[1] ? m[1] : m[0]));
      if (m[2]) pre.appendChild(document.createTextNode(m[2]));
      last = re.lastIndex;
    }
    if (last < text.length) pre.appendChild(document.createTextNode(text.slice(last)));
    return pre;
  }
  function kvTable(parent, pairs) {
    var tb = add(parent, "table", "kvt");
    pairs.forEach(function (pr) {
      if (pr[1] === undefined || pr[1] === null || pr[1] === "") return;
      var tr = add(tb, "tr");
      add(tr, "td", "", pr[0]);
      var td = add(tr, "td");
      if (pr[1] instanceof Node) td.appendChild(pr[1]); else td.textContent = String(pr[1]);
    });
    return tb;
  }
  function link(i, text) {
    var a = el("a", "", text);
    a.setAttribute("data-goto", String(i));
    a.href = "#select=" + RECS[i].seq;
    return a;
  }
  function describe(i) {
    var r = RECS[i];
    if (r.record === "frame") return (r.dir === "in" ? "→ " : "← ") + (r.type || "ack") +
      " #" + r.id + " (seq " + r.seq + ")";
    if (r.record === "http") return r.method + " " + shortPath(r.path) + " → " +
      (r.status === null || r.status === undefined ? "transport error" : r.status) +
      " (seq " + r.seq + ")";
    return r.record + " (seq " + r.seq + ")";
  }
  function body(parent, title, b) {
    add(parent, "h3", "", title);
    if (!b || (!("json" in b) && !("b64" in b))) {
      add(parent, "div", "none", "(no body)");
      return;
    }
    if ("json" in b) { parent.appendChild(jsonPre(b.json)); return; }
    var text = null;
    try {
      var bin = atob(b.b64), bytes = new Uint8Array(bin.length);
      for (var k = 0; k < bin.length; k++) bytes[k] = bin.charCodeAt(k);
      text = new TextDecoder("utf-8", {fatal: true}).decode(bytes);
    } catch (e) { text = null; }
    if (text !== null) { add(parent, "div", "none", "not JSON; as UTF-8 text:");
      add(parent, "pre", "json", text); }
    else { add(parent, "div", "none", "binary, base64:"); add(parent, "pre", "json", b.b64); }
  }
  function headers(parent, h) {
    if (!isObj(h) || !Object.keys(h).length) { add(parent, "div", "none", "(no headers)"); return; }
    kvTable(parent, Object.keys(h).map(function (k) { return [k, h[k]]; }));
  }

  function showDetails(i) {
    var r = RECS[i];
    if (!r) return;
    detailsBody.textContent = "";
    var box = detailsBody;
    if (r.record === "frame") {
      detailsTitle.textContent = (r.dir === "in" ? "runtime → supervisor-sim · " :
        "supervisor-sim → runtime · ") + (r.type || (r.dir === "in" ? "undecodable" : "ack"));
      kvTable(box, [["seq", r.seq], ["t", fmtT(r.t) + " s"], ["frame id", r.id],
        ["type", r.type === null ? "null (empty ack)" : r.type], ["length", r.len + " bytes"],
        ["elements", r.elements], ["stream offset", r.offset],
        ["raw", r.raw_redacted ? "re-encoded from the redacted body" : ""],
        ["reply", frameReply[i] !== undefined ? link(frameReply[i], describe(frameReply[i])) : ""],
        ["request", replyOf[i] !== undefined ? link(replyOf[i], describe(replyOf[i])) : ""]]);
      var caused = causedBy[r.seq] || [];
      if (caused.length) {
        add(box, "h3", "", "HTTP calls it caused");
        var ul = add(box, "ul");
        caused.forEach(function (k) { add(ul, "li").appendChild(link(k, describe(k))); });
      }
      if (r.decode_error) {
        add(box, "h3", "", "Decode error");
        add(box, "pre", "json err", r.decode_error);
      }
      add(box, "h3", "", "Body");
      if (r.body === null || r.body === undefined) add(box, "div", "none", "null");
      else box.appendChild(jsonPre(r.body));
      if (r.error !== undefined && r.error !== null) {
        add(box, "h3", "", "Error slot");
        box.appendChild(jsonPre(r.error, "err"));
      }
      if (r.context_carrier !== undefined) {
        add(box, "h3", "", "Context carrier");
        box.appendChild(jsonPre(r.context_carrier));
      }
      if (r.raw) {
        var det = add(box, "details");
        add(det, "summary", "", "raw msgpack payload (base64, " + r.len + " bytes)");
        add(det, "pre", "json", r.raw);
      }
    } else if (r.record === "http") {
      detailsTitle.textContent = r.method + " " + r.path + (r.query ? "?" + r.query : "");
      var st = el("span", "status " + statusClass(r.status),
        typeof r.status === "number" ? r.status + " " + (REASONS[r.status] || "") :
        "transport error");
      kvTable(box, [["seq", r.seq], ["t", fmtT(r.t) + " s"], ["status", st],
        ["error", r.error], ["attempt", r.attempt],
        ["duration", typeof r.duration_s === "number" ?
          (r.duration_s * 1000).toFixed(2) + " ms" : ""],
        ["cause", typeof r.cause === "number" && seqIndex[r.cause] !== undefined ?
          link(seqIndex[r.cause], describe(seqIndex[r.cause])) : r.cause],
        ["path", r.path], ["query", r.query]]);
      var req = r.request || {}, res = r.response || {};
      add(box, "h3", "", "Request headers");
      headers(box, req.headers);
      body(box, "Request body", req);
      var rh = add(box, "h3", "", "Response ");
      rh.appendChild(st.cloneNode(true));
      add(box, "h3", "", "Response headers");
      headers(box, res.headers);
      body(box, "Response body", res);
    } else {
      detailsTitle.textContent = r.record + (r.event ? " · " + r.event : "") +
        (r.rule ? " · " + r.rule : "");
      kvTable(box, [["seq", r.seq], ["t", fmtT(r.t) + " s"]]);
      add(box, "h3", "", "Record");
      box.appendChild(jsonPre(r));
    }
    details.hidden = false;
    unselect();
    var targets = arrowsBySeq[r.seq] || [];
    if (!targets.length) {
      var other = rowsEl.querySelector('[data-i="' + i + '"]');
      if (other) targets = [other];
    }
    targets.forEach(function (n) { n.classList.add("selected"); });
    details.setAttribute("data-selected-seq", String(r.seq));
    return targets[0];
  }

  function unselect() {
    document.querySelectorAll(".selected").forEach(function (n) {
      n.classList.remove("selected");
    });
  }
  function select(i, scroll) {
    var target = showDetails(i);
    if (target && scroll && target.scrollIntoView) target.scrollIntoView({block: "center"});
    if (history.replaceState && RECS[i]) history.replaceState(null, "", "#select=" + RECS[i].seq);
  }
  function closeDetails() {
    details.hidden = true;
    unselect();
    if (history.replaceState) history.replaceState(null, "", location.pathname + location.search);
  }
  function fromHash() {
    var m = /(?:^#|&)select=(\d+)/.exec(location.hash || "");
    if (m && seqIndex[Number(m[1])] !== undefined) select(seqIndex[Number(m[1])], true);
  }

  rowsEl.addEventListener("click", function (e) {
    var n = e.target.closest ? e.target.closest("[data-i]") : null;
    if (n) select(Number(n.getAttribute("data-i")), false);
  });
  rowsEl.addEventListener("keydown", function (e) {
    if (e.key !== "Enter" && e.key !== " ") return;
    var n = e.target.closest ? e.target.closest("[data-i]") : null;
    if (n) { e.preventDefault(); select(Number(n.getAttribute("data-i")), false); }
  });
  detailsBody.addEventListener("click", function (e) {
    var a = e.target.closest ? e.target.closest("[data-goto]") : null;
    if (a) { e.preventDefault(); select(Number(a.getAttribute("data-goto")), true); }
  });
  document.getElementById("details-close").addEventListener("click", closeDetails);
  document.addEventListener("keydown", function (e) { if (e.key === "Escape") closeDetails(); });
  window.addEventListener("hashchange", fromHash);

  function toggle(id, cls) {
    var box = document.getElementById(id);
    var apply = function () { document.body.classList.toggle(cls, !box.checked); };
    box.addEventListener("change", apply);
    apply();
  }
  toggle("show-logs", "hide-logs");
  toggle("show-process", "hide-process");
  toggle("show-heartbeats", "hide-heartbeats");

  fromHash();
  document.body.setAttribute("data-rendered", "ok");
  document.body.setAttribute("data-records", String(RECS.length));
})();
