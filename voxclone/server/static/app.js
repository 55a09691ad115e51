// voxclone web UI: plain JavaScript over the same HTTP API that scripts use. No CDN, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
let key = localStorage.getItem("voxclone-key") || "";
let current = "";  // the voice being cloned

function say(el, text, ok = true) {
  $(el).textContent = text;
  $(el).className = ok ? "ok" : "error";
}

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: `Bearer ${key}` }, options.headers || {});
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(options.json);
  }
  const r = await fetch(path, Object.assign({}, options, { headers }));
  if (!r.ok) {
    let message = `${r.status} ${r.statusText}`;
    try { message = (await r.json()).error.message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return r;
}

async function signIn(event) {
  if (event) event.preventDefault();
  key = $("key").value.trim() || key;
  try {
    const me = await (await api("/v1/me")).json();
    localStorage.setItem("voxclone-key", key);
    say("who", `signed in as ${me.name}`);
    await Promise.all([loadVoices(), listVoices()]);
  } catch (e) {
    say("who", e.message, false);
  }
}

async function loadVoices() {
  const data = await (await api("/v1/audio/voices")).json();
  const select = $("voice");
  const chosen = select.value;
  select.replaceChildren(...data.voices.map((v) => {
    const o = document.createElement("option");
    o.value = v.name;
    o.textContent = `${v.name} (${v.kind === "cloned" ? "your voice" : v.language})`;
    return o;
  }));
  if (chosen) select.value = chosen;
}

async function listVoices() {
  const data = await (await api("/v1/voices")).json();
  const list = $("voices");
  if (!data.voices.length) {
    list.replaceChildren(Object.assign(document.createElement("li"), { textContent: "No voices yet." }));
    return;
  }
  list.replaceChildren(...data.voices.map((v) => {
    const li = document.createElement("li");
    const sim = v.similarity ? `, similarity ${v.similarity.final.toFixed(2)}` : "";
    li.append(`${v.name}: ${v.state}${sim}`);
    if (v.state === "ready") {
      const exp = document.createElement("button");
      exp.type = "button";
      exp.textContent = "Export";
      exp.setAttribute("aria-label", `Export ${v.name}`);
      exp.onclick = () => download(`/v1/voices/${v.name}/export`, `${v.name}.voxclone`);
      li.append(exp);
    } else {
      const pick = document.createElement("button");
      pick.type = "button";
      pick.textContent = "Continue";
      pick.setAttribute("aria-label", `Continue cloning ${v.name}`);
      pick.onclick = () => { current = v.name; $("new-name").value = v.name; say("samples-status", `working on ${v.name}`); };
      li.append(pick);
    }
    const del = document.createElement("button");
    del.type = "button";
    del.textContent = "Delete";
    del.setAttribute("aria-label", `Delete ${v.name}`);
    del.onclick = async () => {
      if (!confirm(`Delete ${v.name} and every recording of it?`)) return;
      await api(`/v1/voices/${v.name}`, { method: "DELETE" });
      await Promise.all([listVoices(), loadVoices()]);
    };
    li.append(del);
    return li;
  }));
}

async function download(path, filename) {
  const blob = await (await api(path)).blob();
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = filename;
  a.click();
}

async function speak(event) {
  event.preventDefault();
  const fmt = $("format").value;
  say("speak-status", "speaking...");
  $("speak-button").disabled = true;
  try {
    const r = await api("/v1/audio/speech", {
      method: "POST",
      json: { model: "voxclone", input: $("text").value, voice: $("voice").value, response_format: fmt, speed: Number($("speed").value), stream: false },
    });
    const blob = await r.blob();
    const url = URL.createObjectURL(blob);
    $("player").src = url;
    $("download").href = url;
    $("download").download = `speech.${fmt}`;
    $("download").hidden = false;
    say("speak-status", `done: ${(blob.size / 1024).toFixed(0)} KB, watermarked`);
    $("player").play().catch(() => {});
  } catch (e) {
    say("speak-status", e.message, false);
  } finally {
    $("speak-button").disabled = false;
  }
}

async function createVoice(event) {
  event.preventDefault();
  const name = $("new-name").value.trim();
  try {
    await api("/v1/voices", { method: "POST", json: { name, language: $("new-lang").value || null } });
    current = name;
    say("samples-status", `created ${name}: now add recordings`);
    await listVoices();
  } catch (e) {
    say("samples-status", e.message, false);
  }
}

async function upload(path, field, files, method = "POST") {
  const form = new FormData();
  for (const [blob, filename] of files) form.append(field, blob, filename);
  return (await api(path, { method, body: form })).json();
}

async function addSamples(files) {
  if (!current) return say("samples-status", "create the voice first", false);
  try {
    const data = await upload(`/v1/voices/${current}/samples`, "files", files);
    say("samples-status", `${data.samples.length} recording(s), ${data.sample_seconds.toFixed(1)} s in all`);
  } catch (e) {
    say("samples-status", e.message, false);
  }
}

function recorder(button, done) {
  let rec = null;
  button.addEventListener("click", async () => {
    if (rec) { rec.stop(); return; }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const parts = [];
      rec = new MediaRecorder(stream);
      rec.ondataavailable = (e) => parts.push(e.data);
      rec.onstop = async () => {
        stream.getTracks().forEach((t) => t.stop());
        button.setAttribute("aria-pressed", "false");
        button.textContent = button.dataset.label;
        const type = rec.mimeType || "audio/webm";
        rec = null;
        await done(new Blob(parts, { type }), type.includes("ogg") ? "ogg" : "webm");
      };
      rec.start();
      button.dataset.label = button.dataset.label || button.textContent;
      button.setAttribute("aria-pressed", "true");
      button.textContent = "Stop recording";
    } catch (e) {
      alert(`The microphone is not available: ${e.message}`);
    }
  });
}

async function checkQuality() {
  if (!current) return say("samples-status", "create the voice first", false);
  $("report").textContent = "checking (transcribing every clip)...";
  try {
    const report = await (await api(`/v1/voices/${current}/report`)).json();
    const ul = document.createElement("ul");
    ul.append(...report.advice.map((t) => Object.assign(document.createElement("li"), { textContent: t })));
    const h = Object.assign(document.createElement("p"), {
      textContent: `${report.clean_speech_s.toFixed(1)} s of clean speech in ${report.clips_enroll + report.clips_heldout} clips (${report.clips_excluded} left out), language ${report.language}`,
    });
    $("report").replaceChildren(h, ul);
  } catch (e) {
    $("report").textContent = e.message;
  }
}

async function getStatement(event) {
  event.preventDefault();
  if (!current) return say("consent-status", "create the voice first", false);
  try {
    const st = await (await api(`/v1/voices/${current}/consent`, {
      method: "POST", json: { speaker: $("speaker").value, purpose: $("purpose").value },
    })).json();
    $("statement").textContent = st.text;
    say("consent-status", "read the statement aloud, clearly, then record or upload it");
  } catch (e) {
    say("consent-status", e.message, false);
  }
}

async function sendConsent(blob, ext) {
  try {
    await upload(`/v1/voices/${current}/consent/recording`, "file", [[blob, `consent.${ext}`]], "PUT");
    say("consent-status", "consent recording stored; it is checked when the voice is built");
  } catch (e) {
    say("consent-status", e.message, false);
  }
}

async function build(event) {
  event.preventDefault();
  if (!current) return say("build-status", "create the voice first", false);
  try {
    const job = await (await api(`/v1/voices/${current}/build`, { method: "POST", json: { quality: $("quality").value } })).json();
    say("build-status", "queued");
    await follow(job.id);
  } catch (e) {
    say("build-status", e.message, false);
  }
}

// Server-Sent Events through fetch (EventSource cannot send the API key)
async function follow(jobId) {
  const r = await api(`/v1/jobs/${jobId}/events`);
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
      if (!data) continue;
      const job = JSON.parse(data);
      const p = job.progress || {};
      if (p.fraction !== undefined) $("build-progress").value = p.fraction;
      if (job.state === "done") {
        $("build-progress").value = 1;
        say("build-status", `${job.voice} is ready (similarity ${job.result.similarity.final.toFixed(2)}); choose it under Speak`);
        await Promise.all([listVoices(), loadVoices()]);
        $("voice").value = job.voice;
      } else if (job.state === "failed") {
        say("build-status", `build failed: ${job.error}`, false);
      } else {
        say("build-status", p.message || job.state);
      }
    }
  }
}

async function detect(event) {
  event.preventDefault();
  const file = $("detect-file").files[0];
  try {
    const v = await upload("/v1/detect", "file", [[file, file.name]]);
    say("detect-result", v.watermarked
      ? `${v.file}: voxclone speech (watermark confidence ${v.confidence.toFixed(2)})`
      : `${v.file}: no voxclone watermark found (confidence ${v.confidence.toFixed(2)})`, true);
  } catch (e) {
    say("detect-result", e.message, false);
  }
}

$("signin").addEventListener("submit", signIn);
$("speak").addEventListener("submit", speak);
$("create").addEventListener("submit", createVoice);
$("sample-files").addEventListener("change", (e) => addSamples([...e.target.files].map((f) => [f, f.name])));
$("check").addEventListener("click", checkQuality);
$("consent").addEventListener("submit", getStatement);
$("consent-file").addEventListener("change", (e) => sendConsent(e.target.files[0], e.target.files[0].name.split(".").pop()));
$("build").addEventListener("submit", build);
$("detect").addEventListener("submit", detect);
recorder($("rec-sample"), (blob, ext) => addSamples([[blob, `recording.${ext}`]]));
recorder($("rec-consent"), (blob, ext) => sendConsent(blob, ext));
if (key) { $("key").value = key; signIn(); }
