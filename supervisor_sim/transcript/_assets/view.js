(function () {
  "use strict";
  var errBox = document.getElementById("js-errors");
  function fail(message) {
    errBox.hidden = false;
    errBox.textContent += message + "\n";
  }
  window.addEventListener("error", function (e) { fail("JavaScript error: " + e.message); });
  window.addEventListener("unhandledrejection", function (e) {
    fail("JavaScript error: " + (e.reason && e.reason.message ? e.reason.message : e.reason));
  });

  // ---- the index (see _html.py): one entry per record, in seq order ------------------------
  var IDX = JSON.parse(document.getElementById("transcript-index").textContent);
  var N = IDX.n;
  var KIND = IDX.kinds;      // I O frame in/out, H http, L S E log (logs/stdout/stderr),
  var LEVEL = IDX.levels;    // V violation, P process, N note, X other; level "1".."5" or "-"
  var FLAGS = IDX.flags;     // chr(48 + bits): 1 error, 2 heartbeat
  var EX = IDX.ex;           // exchange band: s m e (start, inside, end), upper case = tint a
  var TYPES = IDX.types, TYPE = IDX.type, LINK = IDX.link;
  var TRACEBACKS = IDX.tracebacks || {};  // index -> [summary, traceback text] (error_detail)
  var CHUNK = IDX.chunk;
  var TMS = new Float64Array(N);  // time in ms
  (function () { var acc = 0; for (var i = 0; i < N; i++) { acc += IDX.t[i]; TMS[i] = acc; } })();
  var SEQ = new Float64Array(IDX.seq.length);
  (function () { var acc = 0; for (var i = 0; i < SEQ.length; i++) { acc += IDX.seq[i]; SEQ[i] = acc; } })();
  var TI_ID = IDX.task.ti_id, RUN_ID = IDX.task.run_id;
  function flag(i, bit) { return ((FLAGS.charCodeAt(i) - 48) & bit) !== 0; }
  var ERRORS = [], VIOLATIONS = [], CAUSED = {};
  for (var i0 = 0; i0 < N; i0++) {
    if (flag(i0, 1)) ERRORS.push(i0);
    if (KIND.charAt(i0) === "V") VIOLATIONS.push(i0);
    if (KIND.charAt(i0) === "H" && LINK[i0]) (CAUSED[i0 + LINK[i0]] = CAUSED[i0 + LINK[i0]] || []).push(i0);
  }

  var diagram = document.getElementById("diagram");
  var rowsEl = document.getElementById("rows");
  var win = document.getElementById("win");
  var lanes = document.getElementById("lanes");
  var emptyEl = document.getElementById("empty");
  var details = document.getElementById("details");
  var detailsBody = document.getElementById("details-body");
  var detailsTitle = document.getElementById("details-title");
  var searchBox = document.getElementById("search");
  var searchCount = document.getElementById("search-count");

  // ---- compressed chunks: records (JSON Lines) and the text the search looks in ------------
  function bytesOf(b64) {
    if (Uint8Array.fromBase64) return Uint8Array.fromBase64(b64);
    var bin = atob(b64), out = new Uint8Array(bin.length);
    for (var k = 0; k < bin.length; k++) out[k] = bin.charCodeAt(k);
    return out;
  }
  function inflate(node) {
    if (typeof DecompressionStream === "undefined") {
      return Promise.reject(new Error("this browser has no DecompressionStream: open the page " +
        "in a current Chromium, Firefox or Safari"));
    }
    var stream = new Blob([bytesOf(node.textContent)]).stream()
      .pipeThrough(new DecompressionStream("deflate"));
    return new Response(stream).text();
  }
  function Chunks(cls, prepare) {
    this.prepare = prepare;
    this.nodes = document.querySelectorAll("script." + cls);
    this.text = [];      // chunk -> its text, once inflated
    this.off = [];       // chunk -> Int32Array of line starts (and the end)
    this.pending = [];   // chunk -> promise
    this.loaded = 0;
  }
  Chunks.prototype.load = function (c) {
    var self = this;
    if (c < 0 || c >= this.nodes.length) return Promise.resolve();
    if (!this.pending[c]) {
      this.pending[c] = inflate(this.nodes[c]).then(function (text) {
        if (self.prepare) text = self.prepare(text);
        var count = Number(self.nodes[c].getAttribute("data-count"));
        var off = new Int32Array(count + 1), k = 1, p = -1;
        while (k < count && (p = text.indexOf("\n", p + 1)) >= 0) off[k++] = p + 1;
        off[count] = text.length + 1;
        self.text[c] = text;
        self.off[c] = off;
        self.loaded += 1;
        self.nodes[c].textContent = "";  // the base64 is no longer needed
      });
    }
    return this.pending[c];
  };
  Chunks.prototype.line = function (i) {
    var c = (i / CHUNK) | 0, text = this.text[c];
    if (text === undefined) return null;
    var k = i - c * CHUNK;
    return text.slice(this.off[c][k], this.off[c][k + 1] - 1);
  };
  Chunks.prototype.all = function () {
    var self = this, p = Promise.resolve();
    for (var c = 0; c < this.nodes.length; c++) {
      (function (c) { p = p.then(function () { return self.load(c); }); })(c);
    }
    return p;
  };
  var records = new Chunks("records-chunk");
  // Lower case once: the search is case-insensitive (lower-casing keeps every line break).
  var corpus = new Chunks("search-chunk", function (text) { return text.toLowerCase(); });
  var parsed = new Map();
  function rec(i) {
    var r = parsed.get(i);
    if (r !== undefined) return r;
    var line = records.line(i);
    if (line === null) return null;
    r = JSON.parse(line);
    if (parsed.size > 4000) parsed.clear();
    parsed.set(i, r);
    return r;
  }
  function need(indexes) {
    var seen = {}, waits = [];
    indexes.forEach(function (i) {
      var c = (i / CHUNK) | 0;
      if (!seen[c]) { seen[c] = 1; waits.push(records.load(c)); }
    });
    return Promise.all(waits);
  }

  // ---- text helpers ----------------------------------------------------------------------------
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
  function fmtN(n) { return n.toLocaleString("en-US"); }
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

  // ---- the rows: which are shown, and where ------------------------------------------------
  // A record is one row, an HTTP call two (request, response); a gap of a second or more
  // between two shown records is a row of its own. Rows have fixed heights, so the position of
  // every row is known without drawing it, and only the rows in view are drawn.
  var H = {arrow: 30, log: 20, proc: 24, note: 24, violation: 52, gap: 18};
  function heightOf(kind, part) {
    if (part === 2) return H.gap;
    switch (kind) {
      case "I": case "O": case "H": return H.arrow;
      case "L": case "S": case "E": case "X": return H.log;
      case "P": return H.proc;
      case "N": return H.note;
      case "V": return H.violation;
    }
    return H.log;
  }
  var rowRec = new Int32Array(2 * N + 1), rowPart = new Uint8Array(2 * N + 1);
  var rowTop = new Float64Array(2 * N + 2);
  var rowCount = 0, totalH = 0;
  var firstRow = new Int32Array(N);  // record -> its first row, -1 when filtered out
  var shown = 0;

  var filters = {type: -1, level: 0, ch: {}, heartbeats: true};
  var CH_OF = {I: "comm", O: "comm", H: "api", L: "logs", S: "stdout", E: "stderr",
    P: "process", N: "notes"};
  function visible(i) {
    var k = KIND.charAt(i);
    var ch = CH_OF[k];
    if (ch && !filters.ch[ch]) return false;
    if (k === "H" && !filters.heartbeats && flag(i, 2)) return false;
    if (filters.level && (k === "L" || k === "S" || k === "E" || k === "N")) {
      if (Number(LEVEL.charAt(i)) < filters.level) return false;
    }
    if (filters.type >= 0 && TYPE[i] !== filters.type) {
      // the other half of an exchange of that type, and the HTTP calls its request caused
      var j = LINK[i] ? i + LINK[i] : -1;
      if (j < 0 || TYPE[j] !== filters.type) return false;
    }
    return true;
  }
  function rebuild() {
    rowCount = 0; totalH = 0; shown = 0;
    var last = null;
    for (var i = 0; i < N; i++) {
      if (!visible(i)) { firstRow[i] = -1; continue; }
      shown += 1;
      var k = KIND.charAt(i);
      if (last !== null && TMS[i] - last >= 1000 && k !== "V") {
        rowRec[rowCount] = i; rowPart[rowCount] = 2; rowTop[rowCount] = totalH;
        totalH += H.gap; rowCount += 1;
      }
      last = TMS[i];
      firstRow[i] = rowCount;
      var parts = k === "H" ? 2 : 1;
      for (var p = 0; p < parts; p++) {
        rowRec[rowCount] = i; rowPart[rowCount] = p; rowTop[rowCount] = totalH;
        totalH += heightOf(k, p); rowCount += 1;
      }
    }
    rowTop[rowCount] = totalH;
    document.getElementById("shown-count").textContent = shown === N
      ? fmtN(N) + " records" : fmtN(shown) + " of " + fmtN(N) + " records shown";
    emptyEl.hidden = shown > 0 || N === 0;
  }
  function rowAt(y) {  // the row at offset y (binary search)
    var lo = 0, hi = rowCount - 1;
    if (hi < 0) return 0;
    while (lo < hi) {
      var mid = (lo + hi + 1) >> 1;
      if (rowTop[mid] <= y) lo = mid; else hi = mid - 1;
    }
    return lo;
  }

  // Browsers cap an element's height (Firefox near 17.9 million pixels, some 250,000 frames):
  // past MAX_H the scrollbar moves through the rows proportionally, and the wheel is slowed
  // down to match, so that it still moves the rows by the pixels it is turned.
  var MAX_H = 15e6;
  var spacerH = 0;
  function viewH() { return Math.max(diagram.clientHeight - lanes.offsetHeight, 1); }
  var PAD = 40;  // blank space below the last row
  function ratio() {
    if (totalH <= spacerH) return 1;
    var v = viewH();
    return Math.max((totalH + PAD - v) / Math.max(spacerH + PAD - v, 1), 1);
  }
  function viewTop() { return diagram.scrollTop * ratio(); }  // rows offset at the top of view

  // ---- drawing rows ----------------------------------------------------------------------------
  var drawn = {from: 0, to: 0, valid: false};
  var selected = -1;
  var hitMark = null, currentHit = -1;

  function row(kind, t, i) {
    var r = el("div", "row " + kind);
    add(r, "div", "t", fmtT(t));
    var d = add(r, "div", "d");
    var m = add(r, "div", "m");
    return {row: r, d: d, m: m, i: i};
  }
  function exClasses(parts, i) {
    var c = EX.charAt(i);
    if (c === ".") return;
    var lower = c.toLowerCase();
    parts.row.classList.add("in-ex", c === lower ? "ex-b" : "ex-a");
    parts.d.appendChild(el("div", "act " + (lower === "s" ? "start" : lower === "e" ? "end" : "mid")));
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
    // The parts shown are separated by a space, except one marked "join", which continues the
    // part before it (a query after its path); an empty part is left out with its separator.
    spec.label.forEach(function (part) {
      if (!part || part[1] === "" || part[1] === null || part[1] === undefined) return;
      if (label.firstChild && part[2] !== "join") label.appendChild(document.createTextNode(" "));
      label.appendChild(el("span", part[0], part[1]));
    });
    a.title = label.textContent;
    add(a, "div", "line");
    if (spec.i === selected) a.classList.add("selected");
    return a;
  }

  function drawGap(i, prevT) {
    var g = row("r-gap", null, i);
    // Between the runtime's and the supervisor's lifelines, clear of the activation bar.
    add(g.d, "span", "gap-label", "⋯ " + ((TMS[i] - prevT) / 1000).toFixed(2) + " s later ⋯");
    var c = EX.charAt(i).toLowerCase();
    if (c === "m" || c === "e") {
      g.row.classList.add("in-ex", EX.charAt(i) === c ? "ex-b" : "ex-a");
      g.d.appendChild(el("div", "act mid"));
    }
    return g.row;
  }
  function drawPending(i, part) {
    var p = row("r-pending", TMS[i] / 1000, i);
    p.row.style.height = heightOf(KIND.charAt(i), part) + "px";
    add(p.d, "div", "pending", "…");
    return p.row;
  }

  function drawRecord(i, part) {
    var r = rec(i);
    if (r === null) return drawPending(i, part);
    var kind = r.record;
    var t = typeof r.t === "number" ? r.t : null;
    var p, label;
    if (kind === "frame") {
      var isIn = r.dir === "in";
      var type = r.type || (isIn ? "undecodable" : "ack");
      if (isIn) {
        label = [["ty", type], ["id", "#" + r.id]];
        var cls = "";
        if (r.decode_error) { cls = "err"; label.push(["sum", "undecodable: " + r.decode_error]); }
        else label.push(["sum", summary(r.body, 110)]);
        p = row("r-arrow r-frame", t, i);
        p.d.appendChild(arrow({kind: "request", span: "span-rs", dir: "ltr", type: type,
          seq: r.seq, i: i, cls: cls, label: label}));
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
        p = row("r-arrow r-frame", t, i);
        p.d.appendChild(arrow({kind: "reply", span: "span-rs", dir: "rtl", type: type,
          seq: r.seq, i: i, cls: rcls, label: label}));
      }
      exClasses(p, i);
    } else if (kind === "http") {
      var hb = r.cause === "heartbeat" ? " hb" : "";
      if (part === 0) {
        var q = r.query ? "?" + r.query : "";
        var tag = typeof r.cause === "number" ? "" : String(r.cause);
        p = row("r-arrow r-http" + hb, t, i);
        p.d.appendChild(arrow({kind: "http-request", span: "span-sa", dir: "ltr",
          type: httpType(r), seq: r.seq, i: i, cls: typeof r.cause === "number" ? "nested" : "",
          // A retry's attempt leads, as a tag, so that a path cut short never hides it.
          label: [["tag", tag], ["tag attempt", r.attempt > 1 ? "attempt " + r.attempt : ""],
            ["ty", r.method], ["path", shortPath(r.path)],
            ["q", clip(shortPath(q), 60), "join"]]}));
      } else {
        var sc = statusClass(r.status);
        var stext = typeof r.status === "number"
          ? r.status + (REASONS[r.status] ? " " + REASONS[r.status] : "")
          : "transport error";
        var dur = typeof r.duration_s === "number" ? (r.duration_s * 1000).toFixed(1) + " ms" : "";
        p = row("r-arrow r-http" + hb, null, i);
        p.d.appendChild(arrow({kind: "http-response", span: "span-sa", dir: "rtl",
          type: httpType(r), seq: r.seq, i: i, cls: "dashed " + sc,
          label: [["status " + sc, stext], ["sum", r.error ? clip(String(r.error), 60) : ""],
            ["dur", dur]]}));
      }
      exClasses(p, i);
    } else if (kind === "log") {
      var line = isObj(r.line) ? r.line : {event: short(r.line)};
      var level = String(line.level || "info").toLowerCase();
      p = row("r-log", t, i);
      var lg = add(p.m, "div", "log lvl-" + level + " src-" + r.source);
      lg.setAttribute("data-i", String(i));
      // The parts are separated by spaces (text, not margins), so that the tooltip and a copy
      // of the line read "logs INFO task.runner Hello", not "logsINFOtask.runnerHello".
      var logPart = function (cls, text) {
        if (lg.firstChild) lg.appendChild(document.createTextNode(" "));
        add(lg, "span", cls, text);
      };
      logPart("src", r.source);
      logPart("lvl", level.toUpperCase());
      if (line.logger) logPart("lg-name", line.logger);
      logPart("ev", clip(short(line.event === undefined ? "" : line.event), 400));
      var kv = [];
      var skip = {level: 1, event: 1, timestamp: 1, logger: 1, ti_id: 1, dag_id: 1, task_id: 1,
        run_id: 1, try_number: 1, map_index: 1};
      var tb = TRACEBACKS[i];
      if (tb) {
        skip.error_detail = 1;  // shown as its exception line here, as a traceback in details
        if (tb[0]) logPart("exc", clip(tb[0], 300));
      }
      Object.keys(line).forEach(function (k) {
        if (!skip[k]) kv.push(k + "=" + clip(short(line[k]), 200));
      });
      if (kv.length) logPart("kv", clip(kv.join(" "), 400));
      lg.title = clip(lg.textContent, 2000);
      if (i === selected) lg.classList.add("selected");
      exClasses(p, i);
    } else if (kind === "violation") {
      var v = el("div", "row r-violation");
      v.setAttribute("data-i", String(i));
      v.setAttribute("data-violation", String(r.rule));
      add(v, "div", "vt", fmtT(t));
      v.appendChild(document.createTextNode(" "));  // between blocks: shows as nothing
      var head = add(v, "div", "vhead");
      head.appendChild(document.createTextNode("⚠ VIOLATION "));
      add(head, "span", "vrule", r.rule);
      head.appendChild(document.createTextNode(" "));
      add(head, "span", "vmsg", r.message);
      v.appendChild(document.createTextNode(" "));
      var af = add(v, "div", "vairflow");
      add(af, "b", "", "Airflow: ");
      af.appendChild(document.createTextNode(short(r.airflow === undefined ? "" : r.airflow)));
      if (r.frame_id !== undefined && r.frame_id !== null) {
        af.appendChild(document.createTextNode("  (frame #" + r.frame_id + ")"));
      }
      v.title = head.textContent + "\n" + af.textContent;
      if (i === selected) v.classList.add("selected");
      return v;
    } else if (kind === "process") {
      p = row("r-proc", t, i);
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
      if (i === selected) note.classList.add("selected");
      exClasses(p, i);
    } else if (kind === "note") {
      p = row("r-note", t, i);
      var nlvl = String(r.level || "info").toLowerCase();
      var sn = add(p.d, "div", "note on-sup sup-note lvl-" + nlvl);
      sn.setAttribute("data-i", String(i));
      add(sn, "span", "ev", nlvl);
      sn.appendChild(document.createTextNode(" "));
      add(sn, "span", "", short(r.message === undefined ? "" : r.message));
      sn.title = sn.textContent;
      if (i === selected) sn.classList.add("selected");
      exClasses(p, i);
    } else {
      p = row("r-log", t, i);
      var o = add(p.m, "div", "log");
      o.setAttribute("data-i", String(i));
      add(o, "span", "src", String(kind));
      o.appendChild(document.createTextNode(" "));
      add(o, "span", "ev", clip(JSON.stringify(r), 300));
      o.title = o.textContent;
    }
    if (i === selected) p.row.classList.add("selected-row");
    return p.row;
  }

  function decorate(node, i) {
    if (hitMark && hitMark[i]) node.classList.add(i === currentHit ? "hit-current" : "hit");
    if (flag(i, 1)) node.classList.add("is-error");
  }

  // Draw the rows in view and some more on either side; redrawn when the view nears their edge.
  var OVERSCAN = 1200;  // pixels
  function draw(force) {
    var top = viewTop(), vh = viewH();
    var from = rowAt(Math.max(top - OVERSCAN, 0));
    var to = Math.min(rowAt(top + vh + OVERSCAN) + 1, rowCount);
    if (!force && drawn.valid) {
      var inside = rowTop[drawn.from] <= Math.max(top - OVERSCAN / 3, 0) &&
        (drawn.to >= rowCount || rowTop[drawn.to] >= top + vh + OVERSCAN / 3);
      if (inside) { place(); return; }
    }
    var frag = document.createDocumentFragment();
    var missing = {};
    for (var k = from; k < to; k++) {
      var i = rowRec[k], part = rowPart[k], node;
      if (part === 2) {
        var prev = -1;
        for (var b = k - 1; b >= 0; b--) { if (rowPart[b] !== 2) { prev = rowRec[b]; break; } }
        node = drawGap(i, prev >= 0 ? TMS[prev] : TMS[i]);
      } else {
        node = drawRecord(i, part);
        if (node.classList.contains("r-pending")) missing[(i / CHUNK) | 0] = 1;
        decorate(node, i);
      }
      node.style.height = (rowTop[k + 1] - rowTop[k]) + "px";
      frag.appendChild(node);
    }
    win.textContent = "";
    win.appendChild(frag);
    drawn = {from: from, to: to, valid: true};
    place();
    Object.keys(missing).forEach(function (c) {
      records.load(Number(c)).then(function () { draw(true); });
    });
  }
  function place() {
    var offset = diagram.scrollTop + rowTop[drawn.from] - viewTop();
    win.style.transform = "translateY(" + offset + "px)";
  }
  function layout() {
    spacerH = Math.min(totalH, MAX_H);
    rowsEl.style.height = Math.round(spacerH + PAD) + "px";
    placeLanes();
  }
  // A lane's box is centred on its lifeline, but kept inside the diagram's column: a wide one
  // (a long runtime command, an API URL) is moved in rather than drawn over the time column or
  // the log margin's title. (Their widths are capped in view.css so that the three cannot
  // overlap one another either.)
  var laneCol = lanes.querySelector(".d");
  function placeLanes() {
    var width = laneCol.clientWidth;
    Array.prototype.forEach.call(laneCol.querySelectorAll(".lane"), function (lane) {
      lane.style.left = "";
      lane.style.transform = "";
      var w = lane.offsetWidth, x = lane.offsetLeft - w / 2;  // offsetLeft: the lifeline
      if (x < 0 || x + w > width) {
        lane.style.left = Math.max(Math.min(x, width - w), 0) + "px";
        lane.style.transform = "none";
      }
    });
  }
  var scheduled = false;
  diagram.addEventListener("scroll", function () {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(function () { scheduled = false; draw(false); });
  });
  window.addEventListener("resize", function () { layout(); draw(true); });
  diagram.addEventListener("wheel", function (e) {
    var r = ratio();
    if (r <= 1 || e.ctrlKey || e.deltaMode !== 0 || !e.deltaY) return;
    e.preventDefault();
    diagram.scrollTop += e.deltaY / r;
  }, {passive: false});

  // Bring record i's row to the middle of the view.
  function reveal(i) {
    var k = firstRow[i];
    if (k < 0) return false;
    var vh = viewH(), h = rowTop[k + 1] - rowTop[k];
    var y = Math.max(rowTop[k] - (vh - h) / 2, 0);
    diagram.scrollTop = y / ratio();
    draw(true);
    return true;
  }
  function refresh() {  // after a filter changed: keep what was at the top of the view in view
    var anchor = drawn.valid && rowCount ? rowRec[rowAt(viewTop())] : 0;
    rebuild();
    layout();
    if (selected >= 0 && firstRow[selected] >= 0) { reveal(selected); return; }
    var k = -1;
    for (var i = anchor; i < N && k < 0; i++) k = firstRow[i];
    diagram.scrollTop = k > 0 ? rowTop[k] / ratio() : 0;
    draw(true);
  }

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
    var r = rec(i);
    a.href = "#select=" + (r ? r.seq : "");
    return a;
  }
  function describe(i) {
    var r = rec(i);
    if (!r) return KIND.charAt(i) + " " + i;
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
      text = new TextDecoder("utf-8", {fatal: true}).decode(bytesOf(b.b64));
    } catch (e) { text = null; }
    if (text !== null) { add(parent, "div", "none", "not JSON; as UTF-8 text:");
      add(parent, "pre", "json", text); }
    else { add(parent, "div", "none", "binary, base64:"); add(parent, "pre", "json", b.b64); }
  }
  function headers(parent, h) {
    if (!isObj(h) || !Object.keys(h).length) { add(parent, "div", "none", "(no headers)"); return; }
    kvTable(parent, Object.keys(h).map(function (k) { return [k, h[k]]; }));
  }
  function related(i) {
    var out = [i];
    if (LINK[i]) out.push(i + LINK[i]);
    (CAUSED[i] || []).forEach(function (k) { out.push(k); });
    return out;
  }

  function showDetails(i) {
    var r = rec(i);
    if (!r) return;
    detailsBody.textContent = "";
    var box = detailsBody;
    var k = KIND.charAt(i);
    var pair = LINK[i] ? i + LINK[i] : -1;
    if (r.record === "frame") {
      detailsTitle.textContent = (r.dir === "in" ? "runtime → supervisor-sim · " :
        "supervisor-sim → runtime · ") + (r.type || (r.dir === "in" ? "undecodable" : "ack"));
      kvTable(box, [["seq", r.seq], ["t", fmtT(r.t) + " s"], ["frame id", r.id],
        ["type", r.type === null ? "null (empty ack)" : r.type], ["length", r.len + " bytes"],
        ["elements", r.elements], ["stream offset", r.offset],
        ["raw", r.raw_redacted ? "re-encoded from the redacted body" : ""],
        ["reply", k === "I" && pair >= 0 ? link(pair, describe(pair)) : ""],
        ["request", k === "O" && pair >= 0 ? link(pair, describe(pair)) : ""]]);
      var caused = CAUSED[i] || [];
      if (caused.length) {
        add(box, "h3", "", "HTTP calls it caused");
        var ul = add(box, "ul");
        caused.forEach(function (c) { add(ul, "li").appendChild(link(c, describe(c))); });
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
        ["cause", pair >= 0 ? link(pair, describe(pair)) : r.cause],
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
      if (TRACEBACKS[i]) {
        add(box, "h3", "", "Traceback");
        var tbPre = add(box, "pre", "traceback");
        TRACEBACKS[i][1].split("\n").forEach(function (text, n) {
          if (n) tbPre.appendChild(document.createTextNode("\n"));
          add(tbPre, "span", "tl", text);
        });
      }
      add(box, "h3", "", "Record");
      box.appendChild(jsonPre(r));
    }
    details.hidden = false;
    details.setAttribute("data-selected-seq", String(r.seq));
  }

  function select(i, opts) {
    opts = opts || {};
    selected = i;
    return need(related(i)).then(function () {
      if (opts.scroll !== false && firstRow[i] >= 0) reveal(i); else draw(true);
      if (opts.open !== false || !details.hidden) showDetails(i);
      var r = rec(i);
      if (opts.hash !== false && history.replaceState && r) {
        history.replaceState(null, "", "#select=" + r.seq);
      }
    });
  }
  function closeDetails() {
    details.hidden = true;
    selected = -1;
    draw(true);
    if (history.replaceState) history.replaceState(null, "", location.pathname + location.search);
  }
  function seqToIndex(seq) {
    var lo = 0, hi = SEQ.length - 1;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1;
      if (SEQ[mid] < seq) lo = mid + 1; else if (SEQ[mid] > seq) hi = mid - 1; else return mid;
    }
    return -1;
  }
  function fromHash() {
    var m = /(?:^#|&)select=(-?[\d.]+)/.exec(location.hash || "");
    if (!m) return Promise.resolve();
    var i = seqToIndex(Number(m[1]));
    return i >= 0 ? select(i, {hash: false}) : Promise.resolve();
  }

  rowsEl.addEventListener("click", function (e) {
    var n = e.target.closest ? e.target.closest("[data-i]") : null;
    if (n) select(Number(n.getAttribute("data-i")), {scroll: false});
  });
  rowsEl.addEventListener("keydown", function (e) {
    if (e.key !== "Enter" && e.key !== " ") return;
    var n = e.target.closest ? e.target.closest("[data-i]") : null;
    if (n) {
      e.preventDefault();
      e.stopPropagation();
      select(Number(n.getAttribute("data-i")), {scroll: false});
    }
  });
  detailsBody.addEventListener("click", function (e) {
    var a = e.target.closest ? e.target.closest("[data-goto]") : null;
    if (a) { e.preventDefault(); select(Number(a.getAttribute("data-goto"))); }
  });
  document.getElementById("details-close").addEventListener("click", closeDetails);
  window.addEventListener("hashchange", fromHash);

  // ---- jumping: errors, violations, search hits ---------------------------------------------
  function here() {  // the record jumps start from: the selected one, else the one at the top
    if (selected >= 0) return selected;
    return rowCount ? rowRec[rowAt(viewTop())] - 0.5 : -1;
  }
  function step(list, dir) {  // the next (dir 1) or previous (-1) shown record of a sorted list
    if (!list.length) return -1;
    var from = here(), lo = 0, hi = list.length;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (list[mid] <= from) lo = mid + 1; else hi = mid; }
    var k = dir > 0 ? lo : lo - 1;
    if (dir < 0 && list[k] === from) k -= 1;
    for (; k >= 0 && k < list.length; k += dir) if (firstRow[list[k]] >= 0) return list[k];
    return -1;
  }
  function wrapped(list, dir) {  // the first (dir 1) or last (-1) shown record of a list
    for (var k = dir > 0 ? 0 : list.length - 1; k >= 0 && k < list.length; k += dir) {
      if (firstRow[list[k]] >= 0) return list[k];
    }
    return -1;
  }
  function jump(list, dir) {
    var i = step(list, dir);
    if (i < 0) i = wrapped(list, dir);  // past the last one: round to the first
    if (i >= 0) {
      if (hitMark && hitMark[i]) currentHit = i;
      select(i, {open: false}).then(updateHitCount);
    }
    return i;
  }
  function setCount(id, n, word) {
    document.getElementById(id).textContent = fmtN(n) + " " + word + (n === 1 ? "" : "s");
  }
  setCount("error-count", ERRORS.length, "error");
  setCount("violation-nav", VIOLATIONS.length, "violation");
  ["prev-error", "next-error"].forEach(function (id) {
    document.getElementById(id).disabled = !ERRORS.length;
  });
  ["prev-violation", "next-violation"].forEach(function (id) {
    document.getElementById(id).disabled = !VIOLATIONS.length;
  });
  document.getElementById("next-error").addEventListener("click", function () { jump(ERRORS, 1); });
  document.getElementById("prev-error").addEventListener("click", function () { jump(ERRORS, -1); });
  document.getElementById("next-violation").addEventListener("click", function () { jump(VIOLATIONS, 1); });
  document.getElementById("prev-violation").addEventListener("click", function () { jump(VIOLATIONS, -1); });

  // Search: case-insensitive, in each record's type, body and log text (one line per record).
  var HITS = [], query = "";
  function runSearch(q) {
    query = q;
    if (!q) {
      HITS = []; hitMark = null; currentHit = -1;
      updateHitCount();
      draw(true);
      return Promise.resolve();
    }
    searchCount.textContent = corpus.loaded < corpus.nodes.length ? "loading…" : "";
    return corpus.all().then(function () {
      if (q !== query) return;
      var needle = q.toLowerCase(), hits = [], mark = new Uint8Array(N);
      for (var c = 0; c < corpus.nodes.length; c++) {
        var text = corpus.text[c], off = corpus.off[c], base = c * CHUNK, line = 0;
        var p = text.indexOf(needle);
        while (p >= 0) {
          while (off[line + 1] <= p) line++;  // the line holding position p
          hits.push(base + line);
          mark[base + line] = 1;
          p = text.indexOf(needle, off[line + 1]);  // one hit per record
        }
      }
      HITS = hits; hitMark = mark;
      currentHit = -1;
      var first = step(HITS, 1);
      if (first < 0) first = wrapped(HITS, 1);
      if (first >= 0) {
        currentHit = first;
        return select(first, {open: false}).then(updateHitCount);
      }
      updateHitCount();
      draw(true);
    });
  }
  function updateHitCount() {
    if (!query) { searchCount.textContent = ""; searchBox.classList.remove("no-hits"); return; }
    var shownHits = 0, pos = 0;
    for (var k = 0; k < HITS.length; k++) {
      if (firstRow[HITS[k]] >= 0) { shownHits++; if (HITS[k] === currentHit) pos = shownHits; }
    }
    var hidden = HITS.length - shownHits;
    searchCount.textContent = (shownHits ? (pos ? fmtN(pos) + " of " : "") + fmtN(shownHits)
      : "no") + " hit" + (shownHits === 1 ? "" : "s") +
      (hidden ? " (" + fmtN(hidden) + " filtered out)" : "");
    searchBox.classList.toggle("no-hits", shownHits === 0);
  }
  function nextHit(dir) {
    if (!HITS.length) return;
    if (currentHit >= 0 && selected !== currentHit) selected = currentHit;
    var i = step(HITS, dir);
    if (i < 0) i = wrapped(HITS, dir);
    if (i >= 0) { currentHit = i; select(i, {open: false}).then(updateHitCount); }
  }
  var searchTimer = 0;
  searchBox.addEventListener("input", function () {
    clearTimeout(searchTimer);
    var q = searchBox.value.replace(/[\r\n]+/g, " ");
    searchTimer = setTimeout(function () { runSearch(q); }, q.length < 3 ? 300 : 120);
  });
  searchBox.addEventListener("keydown", function (e) {
    if (e.key === "Enter") {
      e.preventDefault();
      var q = searchBox.value.replace(/[\r\n]+/g, " ");
      if (q !== query) { clearTimeout(searchTimer); runSearch(q); } else nextHit(e.shiftKey ? -1 : 1);
    } else if (e.key === "Escape") {
      if (searchBox.value) { searchBox.value = ""; runSearch(""); } else searchBox.blur();
      e.stopPropagation();
    }
  });
  document.getElementById("search-next").addEventListener("click", function () { nextHit(1); });
  document.getElementById("search-prev").addEventListener("click", function () { nextHit(-1); });

  document.addEventListener("keydown", function (e) {
    var tag = e.target && e.target.tagName;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA") {
      if (e.key === "Escape" && tag !== "INPUT") e.target.blur();
      return;
    }
    if ((tag === "BUTTON" || tag === "A" || tag === "SUMMARY") &&
      (e.key === "Enter" || e.key === " ")) return;  // their own click
    switch (e.key) {
      case "/": e.preventDefault(); searchBox.focus(); searchBox.select(); break;
      case "n": nextHit(1); break;
      case "N": nextHit(-1); break;
      case "e": jump(ERRORS, 1); break;
      case "E": jump(ERRORS, -1); break;
      case "v": jump(VIOLATIONS, 1); break;
      case "V": jump(VIOLATIONS, -1); break;
      case "Enter": if (selected >= 0) select(selected, {scroll: false}); break;
      case "Escape": closeDetails(); break;
      default: return;
    }
  });

  // ---- filters --------------------------------------------------------------------------------
  var typeSelect = document.getElementById("filter-type");
  (function () {
    var groups = {I: "frames from the runtime", O: "frames to the runtime", H: "Execution API",
      X: "other records"};
    var order = TYPES.map(function (_, k) { return k; });
    order.sort(function (a, b) { return IDX.type_count[b] - IDX.type_count[a]; });
    ["I", "O", "H", "X"].forEach(function (g) {
      var og = el("optgroup");
      og.label = groups[g];
      order.filter(function (k) { return IDX.type_kind.charAt(k) === g; }).slice(0, 300)
        .forEach(function (k) {
          var o = add(og, "option", "", clip(TYPES[k], 80) + " (" + fmtN(IDX.type_count[k]) + ")");
          o.value = String(k);
        });
      if (og.children.length) typeSelect.appendChild(og);
    });
  })();
  typeSelect.addEventListener("change", function () {
    filters.type = typeSelect.value === "" ? -1 : Number(typeSelect.value);
    typeSelect.classList.toggle("active", filters.type >= 0);
    refresh(); updateHitCount();
  });
  var levelSelect = document.getElementById("filter-level");
  levelSelect.addEventListener("change", function () {
    filters.level = Number(levelSelect.value);
    levelSelect.classList.toggle("active", filters.level > 0);
    refresh(); updateHitCount();
  });
  ["comm", "api", "logs", "stdout", "stderr", "process", "notes"].forEach(function (ch) {
    var box = document.getElementById("ch-" + ch);
    filters.ch[ch] = box.checked;
    box.addEventListener("change", function () {
      filters.ch[ch] = box.checked;
      box.parentNode.classList.toggle("off", !box.checked);
      refresh(); updateHitCount();
    });
  });
  var hbBox = document.getElementById("show-heartbeats");
  filters.heartbeats = hbBox.checked;
  hbBox.addEventListener("change", function () {
    filters.heartbeats = hbBox.checked;
    hbBox.parentNode.classList.toggle("off", !hbBox.checked);
    refresh(); updateHitCount();
  });

  // ---- start: the chunks the first view needs, then the others in the background ------------
  rebuild();
  layout();
  var m0 = /(?:^#|&)select=(-?[\d.]+)/.exec(location.hash || "");
  var start = m0 ? Math.max(seqToIndex(Number(m0[1])), 0) : 0;
  var firstChunks = [start];
  for (var s = start; s < Math.min(N, start + 200); s += 50) firstChunks.push(s);
  need(firstChunks).then(function () {
    draw(true);
    return fromHash();
  }).then(function () {
    document.body.setAttribute("data-records", String(N));
    document.body.setAttribute("data-rendered", "ok");
    document.body.setAttribute("data-load-ms", String(Math.round(performance.now())));
    if (!m0) diagram.focus({preventScroll: true});
    return records.all();
  }).then(function () {
    document.body.setAttribute("data-records-loaded", "all");
    document.body.setAttribute("data-records-loaded-ms", String(Math.round(performance.now())));
    return corpus.all();
  }).then(function () {
    document.body.setAttribute("data-search-ready", "yes");
    document.body.setAttribute("data-search-ready-ms", String(Math.round(performance.now())));
  }).catch(function (e) {
    fail("Cannot show this transcript: " + (e && e.message ? e.message : e));
  });
})();
