// The emoreason page: choose, record or pick a clip; stream its analysis from /analyze/stream;
// draw the waveform with pitch and loudness under it; show the transcript with the quoted words
// highlighted (click a word to hear it). Plain JS, no dependencies. Model output only ever goes
// into textContent / text nodes (never innerHTML).
"use strict";
const $ = (id) => document.getElementById(id);
const CURVE_POINTS = 300;   // bins of the server's curve series (at most 400)
let current = null;         // {blob, name}: the clip to analyse
let recorder = null;        // live recording state
let shown = null;           // the result on screen (final or partial)
let run = 0;                // id of the latest analysis: older streams stop updating the page

// ---------------------------------------------------------------- colours by meaning
// Known emotion / sentiment labels get a fixed colour that means something (anger red, sadness
// blue, ...); any other label a stable colour hashed from its name.
const LABEL_COLORS = {
  angry: "#dc2626", anger: "#dc2626", frustrated: "#ea580c", disgusted: "#65a30d", disgust: "#65a30d",
  fearful: "#7c3aed", fear: "#7c3aed", sad: "#2563eb", sadness: "#2563eb", neutral: "#6b7280", calm: "#0d9488",
  happy: "#d97706", happiness: "#d97706", joy: "#d97706", excited: "#db2777", surprised: "#0891b2", surprise: "#0891b2",
  other: "#475569", positive: "#16a34a", negative: "#dc2626", mixed: "#a16207",
};
function colorOf(label) {
  if (!label) return "#94a3b8";
  const key = String(label).toLowerCase();
  if (LABEL_COLORS[key]) return LABEL_COLORS[key];
  let h = 0;
  for (const ch of key) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return `hsl(${h % 360}, 55%, 42%)`;
}
const pct = (p) => (100 * p).toFixed(p < 0.1 ? 1 : 0) + "%";
const secs = (t) => t.toFixed(t < 10 ? 1 : 0) + " s";
const el = (tag, props = {}, ...kids) => { const e = Object.assign(document.createElement(tag), props); e.append(...kids); return e; };

// ---------------------------------------------------------------- the model and its labels
async function loadModel() {
  try {
    const h = await (await fetch("health")).json();
    const box = $("model"); box.replaceChildren(`model ${h.model_id} (${h.model})`);
    for (const task of ["emotion", "sentiment"]) {
      const labels = (h.tasks || {})[task] || [];
      if (!labels.length) continue;
      box.append(el("br"), `${task}: `, ...labels.map((l) => {
        const c = el("span", { className: "chip", textContent: l }); c.style.background = colorOf(l); return c;
      }));
    }
  } catch (err) { $("model").textContent = "model details unavailable: " + err.message; }
}

// ---------------------------------------------------------------- example clips
async function loadExamples() {
  const box = $("examples");
  try {
    const body = await (await fetch("examples")).json();
    box.replaceChildren(...body.examples.map((x) => {
      const b = el("button", { type: "button", className: "example", textContent: x.emotion ? `${x.name} (${secs(x.duration)})` : `${x.name}: ${secs(x.duration)}, streams per window` });
      b.title = x.text; b.dataset.name = x.name;
      b.onclick = async () => {
        const blob = await (await fetch(x.url)).blob();
        setAudio(blob, `${x.name}.wav`); analyze();
      };
      return b;
    }));
    if (!body.examples.length) box.replaceChildren(el("span", { className: "muted", textContent: body.unavailable || "none" }));
  } catch (err) { box.replaceChildren(el("span", { className: "muted", textContent: "unavailable: " + err.message })); }
}

// ---------------------------------------------------------------- choosing audio
function setAudio(blob, name) {
  current = { blob, name };
  $("player").src = URL.createObjectURL(blob);
  $("player").hidden = false;
  $("analyze").disabled = false;
  status(`${name} (${(blob.size / 1024).toFixed(0)} KB) ready`);
}
$("drop").onclick = () => $("file").click();
$("drop").onkeydown = (e) => { if (e.key === "Enter" || e.key === " ") $("file").click(); };
$("file").onchange = () => { const f = $("file").files[0]; if (f) setAudio(f, f.name); };
$("drop").ondragover = (e) => { e.preventDefault(); $("drop").classList.add("over"); };
$("drop").ondragleave = () => $("drop").classList.remove("over");
$("drop").ondrop = (e) => {
  e.preventDefault(); $("drop").classList.remove("over");
  const f = e.dataTransfer.files[0]; if (f) setAudio(f, f.name);
};

// ---------------------------------------------------------------- recording
// MediaRecorder (webm/opus in Chromium and Firefox, mp4 in Safari; the server decodes them with
// ffmpeg). Where MediaRecorder is missing, raw PCM from Web Audio is written as WAV.
$("record").onclick = async () => {
  if (recorder) return recorder.stop();
  let stream;
  try { stream = await navigator.mediaDevices.getUserMedia({ audio: true }); }
  catch (err) { return showError("microphone unavailable: " + err.message); }
  recorder = window.MediaRecorder ? mediaRecorder(stream) : pcmRecorder(stream);
  $("record").textContent = "\u25A0 Stop"; $("record").classList.add("on");
  status("recording... press Stop when done");
};
function finishRecording(blob, name) {
  recorder = null;
  $("record").textContent = "\u25CF Record"; $("record").classList.remove("on");
  setAudio(blob, name);
}
function mediaRecorder(stream) {
  const type = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/mp4"].find((t) => MediaRecorder.isTypeSupported(t));
  const rec = new MediaRecorder(stream, type ? { mimeType: type } : {});
  const chunks = [];
  rec.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
  rec.onstop = () => {
    stream.getTracks().forEach((t) => t.stop());
    const mime = rec.mimeType || type || "audio/webm";
    const ext = mime.includes("ogg") ? "ogg" : mime.includes("mp4") ? "m4a" : "webm";
    finishRecording(new Blob(chunks, { type: mime }), `recording.${ext}`);
  };
  rec.start(250);
  return { stop: () => rec.stop() };
}
function pcmRecorder(stream) {
  const ctx = new (window.AudioContext || window.webkitAudioContext)();
  const source = ctx.createMediaStreamSource(stream), node = ctx.createScriptProcessor(4096, 1, 1), chunks = [];
  node.onaudioprocess = (e) => chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
  source.connect(node); node.connect(ctx.destination);
  return { stop: () => {
    source.disconnect(); node.disconnect(); stream.getTracks().forEach((t) => t.stop());
    const blob = encodeWav(chunks, ctx.sampleRate); ctx.close();
    finishRecording(blob, "recording.wav");
  } };
}
function encodeWav(chunks, rate) {
  const n = chunks.reduce((a, c) => a + c.length, 0);
  const buf = new ArrayBuffer(44 + 2 * n), v = new DataView(buf);
  const str = (o, s) => { for (let i = 0; i < s.length; i++) v.setUint8(o + i, s.charCodeAt(i)); };
  str(0, "RIFF"); v.setUint32(4, 36 + 2 * n, true); str(8, "WAVE"); str(12, "fmt ");
  v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
  v.setUint32(24, rate, true); v.setUint32(28, rate * 2, true); v.setUint16(32, 2, true); v.setUint16(34, 16, true);
  str(36, "data"); v.setUint32(40, 2 * n, true);
  let o = 44;
  for (const c of chunks) for (let i = 0; i < c.length; i++, o += 2) {
    const s = Math.max(-1, Math.min(1, c[i])); v.setInt16(o, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return new Blob([buf], { type: "audio/wav" });
}

// ---------------------------------------------------------------- analysis (streamed)
$("task").onchange = () => { $("question").hidden = $("task").value !== "sqa"; };
$("analyze").onclick = () => analyze();
function status(text) { $("status").textContent = text; }
function setState(state) { document.body.dataset.state = state; }

async function analyze() {
  if (!current) return;
  const me = ++run;
  const form = new FormData();
  form.append("file", current.blob, current.name);
  form.append("task", $("task").value);
  form.append("curves", String(CURVE_POINTS));
  if ($("task").value === "sqa") form.append("question", $("question").value);
  $("analyze").disabled = true; setState("analysing");
  status("analysing..."); progress(null);
  const t0 = performance.now();
  try {
    const resp = await fetch("analyze/stream", { method: "POST", body: form });
    if (!resp.ok) {
      let msg = resp.statusText;
      try { const body = await resp.json(); msg = (body.error && body.error.message) || body.error || msg; } catch (_) { /* not JSON */ }
      throw new Error(`${msg} (HTTP ${resp.status})`);
    }
    let final = false;
    for await (const event of ndjson(resp)) {
      if (me !== run) return;  // a newer analysis owns the page now
      if (event.event === "start") onStart(event);
      else if (event.event === "text") onText(event.text);
      else if (event.event === "window") onWindow(event);
      else if (event.event === "result") { final = true; render(event.result); }
      else if (event.event === "error") throw new Error(`${event.message} (HTTP ${event.status})`);
    }
    if (!final) throw new Error("the server closed the stream before the result");
    status(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    setState("done");
  } catch (err) {
    if (me === run) showError(err.message);
  } finally {
    if (me === run) { $("analyze").disabled = false; $("progress").hidden = true; }
  }
}
async function* ndjson(resp) {
  const reader = resp.body.getReader(), dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (value) buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i).trim(); buf = buf.slice(i + 1);
      if (line) yield JSON.parse(line);
    }
    if (done) break;
  }
  if (buf.trim()) yield JSON.parse(buf);
}
// An error replaces whatever result was on screen: a stale label next to a failed clip misleads.
function showError(message) {
  shown = null;
  $("result").hidden = true;
  clearResult();
  $("error").hidden = false;
  $("errorText").textContent = message;
  status("failed");
  setState("error");
}
function clearResult() {
  for (const id of ["label", "conf", "bars", "explanation", "transcript", "transcriptNote", "answer", "cues", "timeline", "ticks", "segInfo"]) $(id).replaceChildren();
  for (const id of ["curvesBox", "timelineBox", "answerBox", "transcriptBox", "cuesBox", "consistency"]) $(id).hidden = true;
}
function progress(done, total) {
  const box = $("progress"), bar = $("progressBar");
  if (done === null) { box.hidden = true; bar.dataset.history = ""; return; }
  box.hidden = false;
  const p = total ? Math.round((100 * done) / total) : 0;
  $("progressFill").style.width = p + "%";
  bar.setAttribute("aria-valuenow", String(p));
  bar.dataset.history = ((bar.dataset.history || "") + ` ${done}/${total}`).trim();
  $("progressText").textContent = `${done} of ${total} window${total === 1 ? "" : "s"}`;
}
function onStart(ev) {
  $("error").hidden = true;
  clearResult();
  shown = { duration: ev.duration, segments: [], windows: ev.windows, spans: ev.spans, curves: ev.curves };
  $("result").hidden = false;
  $("label").textContent = "\u2026"; $("label").style.color = "";
  $("conf").textContent = `${secs(ev.duration)} \u00B7 ${ev.windows} window${ev.windows === 1 ? "" : "s"}`;
  drawCurves(ev.curves, ev.duration);
  progress(0, ev.windows);
  if (ev.windows > 1) renderTimeline(shown);
}
// A one-window clip's explanation (asr: transcript, sqa: answer) as it is generated.
function onText(text) {
  const task = $("task").value, box = task === "asr" ? "transcriptBox" : task === "sqa" ? "answerBox" : "explanationBox";
  $(box).hidden = false;
  $(task === "asr" ? "transcript" : task === "sqa" ? "answer" : "explanation").textContent = text + " \u2026";
}
function onWindow(ev) {
  shown.segments[ev.index] = ev.segment;
  progress(shown.segments.filter(Boolean).length, ev.windows);
  renderTimeline(shown);
  // Until the summary arrives, show the latest window's reading.
  const s = ev.segment;
  if (s.label) { $("label").textContent = s.label; $("label").style.color = colorOf(s.label); renderBars($("bars"), s.scores); }
  status(`window ${ev.index + 1} of ${ev.windows} done (${secs(s.start)}-${secs(s.end)})`);
}

// ---------------------------------------------------------------- the result
const segText = (s) => s.answer ?? (s.transcript ? s.transcript.text : "");
function render(r) {
  const curves = shown && shown.curves;
  shown = { ...r, windows: (r.segments || []).length || 1, curves };
  $("error").hidden = true;
  $("result").hidden = false;
  const labelled = r.label !== null && r.label !== undefined;
  $("label").textContent = labelled ? r.label : r.task;
  $("label").style.color = labelled ? colorOf(r.label) : "";
  $("conf").textContent = (labelled ? `${pct(r.scores[r.label])} \u00B7 ` : "") + `${secs(r.duration)} \u00B7 ${r.task}`;
  renderBars($("bars"), r.scores);
  $("explanationBox").hidden = !labelled;
  renderExplanation($("explanation"), r.explanation, r.quotes);
  const trimmed = r.explanation_trimmed || 0;
  $("consistency").hidden = r.consistent !== false && !trimmed;
  $("consistency").textContent = r.consistent === false
    ? `Note: this explanation does not commit to the label "${r.label}" (label and text disagree).`
    : trimmed ? `Note: ${trimmed} generated sentence${trimmed === 1 ? "" : "s"} that repeated or argued against "${r.label}" ${trimmed === 1 ? "was" : "were"} left out.` : "";
  $("answerBox").hidden = r.answer === null || r.answer === undefined;
  $("questionHead").textContent = r.question ? `Answer to: ${r.question}` : "Answer";
  $("answer").textContent = r.answer || "";
  renderTranscript(r);
  renderCues(r.cues);
  $("timelineBox").hidden = !(r.segments && r.segments.length);
  if (!$("timelineBox").hidden) renderTimeline(shown);
  if (curves) drawCurves(curves, r.duration);
}
function renderBars(box, scores) {
  box.replaceChildren();
  for (const [label, p] of Object.entries(scores || {}).sort((a, b) => b[1] - a[1])) {
    const fill = el("div", { className: "fill" });
    fill.style.width = (100 * p).toFixed(1) + "%"; fill.style.background = colorOf(label);
    box.append(el("div", { className: "bar" }, el("span", { textContent: label }), el("div", { className: "track" }, fill),
                  el("span", { className: "pct", textContent: pct(p) })));
  }
}
// Quotes in the explanation, highlighted where they occur in its text.
function renderExplanation(box, text, quotes) {
  box.replaceChildren();
  if (!text) { box.textContent = "(no explanation generated)"; return; }
  const spans = [];
  for (const q of quotes || []) {
    let from = 0, i;
    while (q.text && (i = text.indexOf(q.text, from)) >= 0) { spans.push([i, i + q.text.length, q]); from = i + q.text.length; }
  }
  spans.sort((a, b) => a[0] - b[0]);
  let pos = 0;
  for (const [s, e, q] of spans) {
    if (s < pos) continue;  // overlapping match: keep the first
    box.append(text.slice(pos, s));
    const m = el("mark", { textContent: text.slice(s, e) });
    if (q.start != null) { m.title = `${secs(q.start)}-${secs(q.end)}`; m.style.cursor = "pointer"; m.onclick = () => seek(q.start, true); }
    box.append(m); pos = e;
  }
  box.append(text.slice(pos));
}

// Words compared without case and punctuation (as quotes are matched to transcripts).
const norm = (w) => w.toLowerCase().replace(/[^\p{L}\p{N}']+/gu, "").replace(/^'+|'+$/g, "");
// The transcript as clickable words; the words a quote repeats are highlighted. Word times come
// from Whisper's timings when the transcript has them, else from the character position (approximate).
function transcriptWords(t, duration) {
  if (t.words && t.words.length) return { words: t.words.map((w) => ({ text: w.text.trim(), start: w.start, end: w.end, probability: w.probability })), timed: true };
  const parts = t.text.split(/\s+/).filter(Boolean), total = parts.reduce((a, w) => a + w.length + 1, 0) || 1;
  let at = 0;
  return { timed: false, words: parts.map((w) => {
    const start = (duration * at) / total; at += w.length + 1;
    return { text: w, start, end: (duration * at) / total };
  }) };
}
function quotedWordIndexes(words, quotes) {
  const keys = words.map((w) => norm(w.text)), hit = new Set();
  for (const q of quotes || []) {
    const qk = q.text.split(/\s+/).map(norm).filter(Boolean);
    if (!qk.length) continue;
    for (let i = 0; i + qk.length <= keys.length; i++) {
      let j = 0, k = i;
      while (j < qk.length && k < keys.length) { if (!keys[k]) { k++; continue; } if (keys[k] !== qk[j]) break; j++; k++; }
      if (j === qk.length) for (let x = i; x < k; x++) hit.add(x);
    }
  }
  return hit;
}
function renderTranscript(r) {
  const t = r.transcript, box = $("transcript");
  $("transcriptBox").hidden = !t;
  box.replaceChildren();
  if (!t) return;
  $("transcriptHead").textContent = `Transcript (${t.source})`;
  const { words, timed } = transcriptWords(t, r.duration);
  const hit = quotedWordIndexes(words, r.quotes);
  let mark = null;
  words.forEach((w, i) => {
    const span = el("span", { className: "word", textContent: w.text });
    span.dataset.start = w.start.toFixed(2); span.dataset.end = w.end.toFixed(2);
    // the transcriber's confidence in the word, when the source gives one (Whisper)
    span.title = `${secs(w.start)}` + (w.probability != null ? `, p ${w.probability.toFixed(2)}` : "");
    span.onclick = () => seek(w.start, true);
    if (hit.has(i)) {  // consecutive quoted words share one <mark>
      if (mark) mark.append(" "); else { if (i > 0) box.append(" "); mark = el("mark", { className: "quote" }); box.append(mark); }
      mark.append(span);
    } else {
      mark = null;
      if (i > 0) box.append(" ");
      box.append(span);
    }
  });
  $("transcriptNote").textContent = (hit.size ? "Highlighted: the words the explanation quotes. " : "")
    + "Click a word to play from there" + (timed ? "." : " (times estimated: this transcript has no word timings).");
}
function renderCues(cues) {
  const entries = Object.entries(cues || {}).filter(([, v]) => v !== null && v !== undefined);
  $("cuesBox").hidden = entries.length === 0;
  $("cues").replaceChildren(...entries.map(([k, v]) => el("tr", {}, el("td", { textContent: k.replace(/_/g, " ") }), el("td", { textContent: String(v) }))));
}
function renderTimeline(r) {
  $("timelineBox").hidden = false;
  const tl = $("timeline"); tl.replaceChildren();
  // windows still pending are drawn where the server said it cuts them (`spans` of the start event)
  const n = r.windows || r.segments.length, spans = r.spans || [];
  for (let i = 0; i < n; i++) {
    const s = r.segments[i], span = spans[i] || [0, 0];
    const start = s ? s.start : span[0], end = s ? s.end : span[1];
    const d = el("div");
    d.style.flex = String(Math.max(end - start, 0.1));
    if (!s) { d.className = "pending"; d.textContent = "\u2026"; tl.append(d); continue; }
    d.style.background = colorOf(s.label);
    d.textContent = s.label || `${start.toFixed(0)} s`;
    d.title = `${secs(start)}-${secs(end)}: ` + (s.label ? `${s.label} ${pct(s.scores[s.label])}` : segText(s));
    d.onclick = () => selectSegment(r, i);
    tl.append(d);
  }
  $("ticks").replaceChildren(...[0, r.duration / 2, r.duration].map((t) => el("span", { textContent: secs(t) })));
}
function selectSegment(r, i) {
  const s = r.segments[i];
  [...$("timeline").children].forEach((d, j) => d.classList.toggle("sel", j === i));
  const head = el("h2", { textContent: `${secs(s.start)}-${secs(s.end)}` + (s.label ? `: ${s.label} (${pct(s.scores[s.label])})` : "") });
  const bars = el("div", { className: "bars" }); renderBars(bars, s.scores);
  const p = el("p", { className: "text" });
  if (s.label) renderExplanation(p, s.explanation, s.quotes); else p.textContent = segText(s);
  $("segInfo").replaceChildren(head, bars, p);
  if (s.label && s.transcript) $("segInfo").append(el("p", { className: "text", textContent: "Transcript: " + s.transcript.text }));
  seek(s.start, false);
}

// ---------------------------------------------------------------- curves
// One canvas each: the waveform's peaks, the pitch curve (gaps where unvoiced) and the loudness
// curve, sharing the time axis; the playhead runs over all three.
function drawCurves(c, duration) {
  $("curvesBox").hidden = !c;
  if (!c) return;
  const ctxOf = (id) => {
    const cv = $(id), dpr = window.devicePixelRatio || 1;
    cv.width = Math.max(1, Math.round(cv.clientWidth * dpr)); cv.height = Math.round(Number(cv.getAttribute("height")) * dpr);
    const g = cv.getContext("2d"); g.clearRect(0, 0, cv.width, cv.height); return [cv, g];
  };
  const [wv, wg] = ctxOf("wave"), n = c.peak.length, bw = wv.width / n;
  wg.fillStyle = "#64748b";
  c.peak.forEach((p, i) => { const h = Math.max(1, p * wv.height); wg.fillRect(i * bw, (wv.height - h) / 2, Math.max(1, bw - 0.5), h); });
  wv.dataset.drawn = String(n);
  $("pitch").dataset.drawn = String(line("pitch", c.pitch_hz, "#7c3aed", "pitchRange", "Hz"));
  $("loud").dataset.drawn = String(line("loud", c.loudness_dbfs.map((v) => Math.max(v, -70)), "#0d9488", "loudRange", "dB"));
  function line(id, values, color, rangeId, unit) {
    const [cv, g] = ctxOf(id), ok = values.filter((v) => v !== null && Number.isFinite(v));
    if (!ok.length) { $(rangeId).textContent = "(none measured)"; return 0; }
    let lo = Math.min(...ok), hi = Math.max(...ok);
    if (hi - lo < 1e-6) { lo -= 1; hi += 1; }
    $(rangeId).textContent = `${lo.toFixed(0)}-${hi.toFixed(0)} ${unit}`;
    const pad = 4 * (window.devicePixelRatio || 1), x = (i) => (i + 0.5) * (cv.width / values.length);
    const y = (v) => cv.height - pad - ((v - lo) / (hi - lo)) * (cv.height - 2 * pad);
    g.strokeStyle = color; g.fillStyle = color; g.lineWidth = 2 * (window.devicePixelRatio || 1);
    g.beginPath();
    let pen = false, drawn = 0;
    values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) { pen = false; return; }
      drawn++;
      if (pen) g.lineTo(x(i), y(v)); else { g.moveTo(x(i), y(v)); g.fillRect(x(i) - 1, y(v) - 1, 2, 2); }
      pen = true;
    });
    g.stroke();
    return drawn;
  }
}
for (const id of ["wave", "pitch", "loud"]) {
  $(id).onclick = (e) => {
    if (!shown || !shown.duration) return;
    const rect = e.currentTarget.getBoundingClientRect();
    seek(((e.clientX - rect.left) / rect.width) * shown.duration, true);
  };
}
function seek(t, play) {
  const a = $("player");
  if (a.hidden) return;
  a.currentTime = t;
  if (play) a.play().catch(() => { /* autoplay refused: the position is still set */ });
  movePlayhead();
}
function movePlayhead() {
  const a = $("player"), head = $("playhead");
  if (!shown || !shown.duration || $("curvesBox").hidden) { head.style.display = "none"; return; }
  head.style.display = "block";
  head.style.left = `${Math.min(100, (100 * a.currentTime) / shown.duration)}%`;
  for (const w of $("transcript").querySelectorAll(".word")) {
    w.classList.toggle("now", a.currentTime >= Number(w.dataset.start) && a.currentTime < Number(w.dataset.end));
  }
}
$("player").ontimeupdate = movePlayhead;
window.addEventListener("resize", () => { if (shown && shown.curves) drawCurves(shown.curves, shown.duration); });

loadModel();
loadExamples();
