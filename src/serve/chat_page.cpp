// The chat page gptrain serve answers at /: one static HTML file with its CSS and JS inline (no
// CDN, nothing fetched but the server's own API). It talks OpenAI's streaming chat API, keeps the
// conversation in the page (and localStorage), renders text only (textContent: a model's output is
// never HTML), and stops an answer with an AbortController (the server cancels the sequence when
// the connection closes).
#include "serve/server.h"

namespace gptrain::serve {

const std::string& chat_page_html() {
  static const std::string page = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gptrain chat</title>
<link rel="icon" href="data:,">
<style>
  :root { --fg: #1d1f23; --muted: #6b7280; --line: #e5e7eb; --user: #eef2ff; --bot: #f9fafb; --accent: #4f46e5; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.5 system-ui, sans-serif; color: var(--fg); display: flex; height: 100vh; }
  main { flex: 1; display: flex; flex-direction: column; min-width: 0; }
  header { padding: 10px 16px; border-bottom: 1px solid var(--line); display: flex; gap: 12px; align-items: center; }
  header h1 { font-size: 16px; margin: 0; }
  #model { color: var(--muted); font-size: 13px; }
  #messages { flex: 1; overflow-y: auto; padding: 16px; display: flex; flex-direction: column; gap: 10px; }
  .msg { max-width: 80ch; padding: 8px 12px; border-radius: 8px; white-space: pre-wrap; word-wrap: break-word; }
  .msg.user { align-self: flex-end; background: var(--user); }
  .msg.assistant { align-self: flex-start; background: var(--bot); border: 1px solid var(--line); }
  .msg.error { align-self: center; color: #b91c1c; font-size: 13px; }
  .msg .meta { display: block; color: var(--muted); font-size: 12px; margin-top: 4px; }
  form { display: flex; gap: 8px; padding: 12px 16px; border-top: 1px solid var(--line); }
  textarea { flex: 1; resize: none; height: 60px; font: inherit; padding: 8px; border: 1px solid var(--line); border-radius: 6px; }
  button { font: inherit; padding: 6px 14px; border-radius: 6px; border: 1px solid var(--accent); background: var(--accent); color: white; cursor: pointer; }
  button.secondary { background: white; color: var(--accent); }
  button:disabled { opacity: .4; cursor: default; }
  aside { width: 240px; border-left: 1px solid var(--line); padding: 12px 16px; font-size: 13px; overflow-y: auto; }
  aside label { display: block; margin: 10px 0 2px; color: var(--muted); }
  aside input, aside textarea { width: 100%; font: inherit; padding: 4px 6px; border: 1px solid var(--line); border-radius: 4px; }
  aside textarea { height: 70px; }
</style>
</head>
<body>
<main>
  <header><h1>gptrain chat</h1><span id="model">connecting...</span>
    <span style="flex:1"></span><button id="new" class="secondary" type="button">New chat</button></header>
  <div id="messages" aria-live="polite"></div>
  <form id="form">
    <textarea id="input" placeholder="Type a message. Enter sends, Shift+Enter adds a line." autofocus></textarea>
    <button id="send" type="submit">Send</button>
    <button id="stop" type="button" class="secondary" disabled>Stop</button>
  </form>
</main>
<aside>
  <strong>Sampling</strong>
  <label for="temperature">temperature (0: greedy)</label><input id="temperature" type="number" min="0" max="2" step="0.1" value="0">
  <label for="top_k">top_k (0: off)</label><input id="top_k" type="number" min="0" step="1" value="0">
  <label for="top_p">top_p</label><input id="top_p" type="number" min="0.01" max="1" step="0.05" value="1">
  <label for="max_tokens">max tokens</label><input id="max_tokens" type="number" min="1" step="1" value="256">
  <label for="seed">seed (empty: random)</label><input id="seed" type="number" step="1" value="">
  <label for="system">system message</label><textarea id="system" placeholder="(none)"></textarea>
  <label for="api_key">API key (when the server wants one)</label><input id="api_key" type="password" autocomplete="off">
</aside>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const store = window.localStorage;
let history = [];
let controller = null;
let modelName = null;

try { history = JSON.parse(store.getItem("gptrain.history") || "[]"); } catch (e) { history = []; }
for (const id of ["temperature", "top_k", "top_p", "max_tokens", "seed", "system", "api_key"]) {
  const saved = store.getItem("gptrain." + id);
  if (saved !== null) $(id).value = saved;
  $(id).addEventListener("change", () => store.setItem("gptrain." + id, $(id).value));
}

function headers() {
  const h = { "Content-Type": "application/json" };
  if ($("api_key").value) h["Authorization"] = "Bearer " + $("api_key").value;
  return h;
}

function bubble(role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  div.textContent = text;
  $("messages").appendChild(div);
  $("messages").scrollTop = $("messages").scrollHeight;
  return div;
}

function render() {
  $("messages").textContent = "";
  for (const m of history) bubble(m.role, m.content);
}

function busy(on) {
  $("send").disabled = on;
  $("stop").disabled = !on;
}

async function loadModel() {
  try {
    const r = await fetch("/v1/models", { headers: headers() });
    const j = await r.json();
    if (!r.ok) throw new Error(j.error ? j.error.message : r.statusText);
    modelName = j.data[0].id;
    $("model").textContent = modelName + " (context " + j.data[0].meta.n_ctx_train + ")";
  } catch (e) {
    $("model").textContent = "model unknown: " + e.message;
  }
}

async function send(text) {
  const conversation = history;  // "New chat" during the answer starts another one: this answer stays out of it
  history.push({ role: "user", content: text });
  bubble("user", text);
  const out = bubble("assistant", "");
  const messages = [];
  if ($("system").value.trim()) messages.push({ role: "system", content: $("system").value });
  messages.push(...history);
  const body = {
    model: modelName || undefined, messages, stream: true,
    stream_options: { include_usage: true },
    temperature: Number($("temperature").value), top_p: Number($("top_p").value),
    top_k: Number($("top_k").value), max_tokens: Number($("max_tokens").value),
  };
  if ($("seed").value !== "") body.seed = Number($("seed").value);
  controller = new AbortController();
  busy(true);
  let reply = "", finish = "", usage = null, failed = false;
  try {
    const r = await fetch("/v1/chat/completions", { method: "POST", headers: headers(), body: JSON.stringify(body), signal: controller.signal });
    if (!r.ok) {
      let message = r.status + " " + r.statusText;
      try { const j = await r.json(); if (j.error) message = j.error.message; } catch (e) {}
      throw new Error(message);
    }
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") continue;
          const j = JSON.parse(data);
          if (j.error) throw new Error(j.error.message);
          if (j.usage) usage = j.usage;
          if (!j.choices || !j.choices.length) continue;
          const c = j.choices[0];
          if (c.delta && c.delta.content) { reply += c.delta.content; out.textContent = reply; }
          if (c.finish_reason) finish = c.finish_reason;
          $("messages").scrollTop = $("messages").scrollHeight;
        }
      }
    }
  } catch (e) {
    if (e.name === "AbortError") finish = "stopped";
    else { failed = true; bubble("error", "error: " + e.message); }
  } finally {
    controller = null;
    busy(false);
  }
  out.textContent = reply;
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = (finish || "incomplete") + (usage ? " · " + usage.completion_tokens + " tokens" : "");
  out.appendChild(meta);
  out.dataset.finish = failed ? "error" : finish || "incomplete";
  if (history !== conversation) return;
  if (failed && !reply) {
    history.pop();  // the question that got no answer is not kept as context
    return;
  }
  history.push({ role: "assistant", content: reply });
  store.setItem("gptrain.history", JSON.stringify(history));
}

$("form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("input").value.trim();
  if (!text || controller) return;
  $("input").value = "";
  send(text);
});
$("input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("form").requestSubmit(); }
});
$("stop").addEventListener("click", () => { if (controller) controller.abort(); });
$("new").addEventListener("click", () => { if (controller) controller.abort(); history = []; store.removeItem("gptrain.history"); render(); });

render();
loadModel();
</script>
</body>
</html>
)HTML";
  return page;
}

}  // namespace gptrain::serve
