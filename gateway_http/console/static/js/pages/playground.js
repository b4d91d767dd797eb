// Playground: chat with any model, streamed (POST /v1/chat/completions with
// stream: true), with the request's cost from the final usage chunk.
import { api, session } from "../api.js";
import { field, fmt, h, say } from "../dom.js";

async function* sse(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of frame.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") return;
        yield JSON.parse(data);
      }
    }
  }
}

export async function render(section, { signal }) {
  const models = (await api("/models", { signal })).data.filter((m) => (m.capabilities || []).includes("chat"));
  const model = h("select", { name: "model" }, models.map((m) => h("option", { value: m.id }, m.id)));
  const system = h("textarea", { name: "system", rows: 2, placeholder: "optional" });
  const prompt = h("textarea", { name: "prompt", rows: 4, required: true });
  const send = h("button", { type: "submit" }, "Send");
  const stop = h("button", { type: "button", disabled: true }, "Stop");
  const output = h("pre", { class: "output", "aria-live": "polite", "aria-label": "Answer", tabindex: "0" });
  const meta = h("p", { class: "meta", role: "status" });
  const form = h(
    "form",
    { class: "card", "aria-label": "Chat" },
    field("Model", model),
    field("System prompt", system),
    field("Message", prompt, "Ctrl+Enter sends."),
    h("div", { class: "buttons" }, send, " ", stop),
  );
  section.append(form, h("h2", {}, "Answer"), output, meta);
  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });

  let running = null;
  stop.addEventListener("click", () => running?.abort());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    running = new AbortController();
    signal.addEventListener("abort", () => running?.abort());
    send.disabled = true;
    stop.disabled = false;
    output.textContent = "";
    meta.textContent = "Waiting for the first token…";
    const messages = [];
    if (system.value.trim()) messages.push({ role: "system", content: system.value });
    messages.push({ role: "user", content: prompt.value });
    const started = performance.now();
    try {
      const response = await fetch("/v1/chat/completions", {
        method: "POST",
        headers: { Authorization: `Bearer ${session.key}`, "Content-Type": "application/json" },
        body: JSON.stringify({ model: model.value, messages, stream: true, stream_options: { include_usage: true } }),
        signal: running.signal,
        credentials: "omit",
      });
      if (!response.ok) {
        const body = await response.json().catch(() => null);
        throw new Error(body?.error?.message || `HTTP ${response.status}`);
      }
      const generation = response.headers.get("x-generation-id");
      let usage = null;
      let first = null;
      for await (const chunk of sse(response)) {
        if (chunk.error) throw new Error(chunk.error.message);
        const delta = chunk.choices?.[0]?.delta?.content;
        if (delta) {
          first ??= performance.now() - started;
          output.append(delta);
        }
        if (chunk.usage) usage = chunk.usage;
      }
      const parts = [`Model ${model.value}`, `first token ${fmt.ms(first)}`, `total ${fmt.ms(performance.now() - started)}`];
      if (usage) parts.push(`${fmt.int(usage.prompt_tokens)} + ${fmt.int(usage.completion_tokens)} tokens`, `cost ${fmt.usd(usage.cost ?? 0)}`);
      if (generation) parts.push(`generation ${generation}`);
      meta.textContent = parts.join(" · ");
      say("Answer complete.");
    } catch (err) {
      meta.textContent = err.name === "AbortError" ? "Stopped." : `Failed: ${err.message}`;
    } finally {
      send.disabled = false;
      stop.disabled = true;
      running = null;
    }
  });
  prompt.focus();
}
