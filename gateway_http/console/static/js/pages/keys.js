// Keys (admin keys only): list, create with a policy (the secret shown once, with a copy
// button), update, revoke, add credits; through the admin API under /v1/keys.
import { api } from "../api.js";
import { field, fmt, h, say, table } from "../dom.js";

function numberOrNull(input) {
  const text = input.value.trim();
  return text === "" ? null : Number(text);
}

// The policy fields as form controls, filled from a key when editing one.
function policyFields(key = {}) {
  const rate = key.rate_limit || {};
  const c = {
    name: h("input", { name: "name", required: true, value: key.name || "" }),
    limit: h("input", { name: "limit", type: "number", min: "0", step: "any", value: key.limit ?? "" }),
    rpm: h("input", { name: "rpm", type: "number", min: "1", step: "1", value: rate.requests ?? "" }),
    tpm: h("input", { name: "tpm", type: "number", min: "1", step: "1", value: rate.tokens ?? "" }),
    max_concurrent: h("input", { name: "max_concurrent", type: "number", min: "1", step: "1", value: rate.concurrent ?? "" }),
    allowed_models: h("input", { name: "allowed_models", value: (key.allowed_models || []).join(", "), placeholder: "openai/*, local/*" }),
    expires_at: h("input", {
      name: "expires_at",
      type: "datetime-local",
      value: key.expires_at ? new Date(key.expires_at * 1000).toISOString().slice(0, 16) : "",
    }),
  };
  const fields = [
    field("Name", c.name),
    field("Credit limit (USD)", c.limit, "Empty: unlimited."),
    field("Requests per minute", c.rpm),
    field("Tokens per minute", c.tpm),
    field("Concurrent requests", c.max_concurrent),
    field("Allowed models", c.allowed_models, "Comma-separated globs; empty: every model."),
    field("Expires (UTC)", c.expires_at),
  ];
  const values = () => ({
    name: c.name.value.trim(),
    limit: numberOrNull(c.limit),
    rpm: numberOrNull(c.rpm),
    tpm: numberOrNull(c.tpm),
    max_concurrent: numberOrNull(c.max_concurrent),
    allowed_models: c.allowed_models.value.split(",").map((m) => m.trim()).filter(Boolean),
    expires_at: c.expires_at.value ? Date.parse(`${c.expires_at.value}Z`) / 1000 : null,
  });
  return { fields, values, first: c.name };
}

function secretBox(secret) {
  const output = h("input", { readonly: true, value: secret, class: "secret", "aria-label": "New key" });
  const copy = h("button", { type: "button" }, "Copy key");
  copy.addEventListener("click", async () => {
    output.select();
    try {
      await navigator.clipboard.writeText(secret);
      say("Key copied to the clipboard.");
    } catch {
      say("Press Ctrl+C to copy the selected key.");
    }
  });
  const box = h(
    "div",
    { class: "card secret-box", role: "alert" },
    h("h2", {}, "New key"),
    h("p", {}, "Copy it now: it is shown only once and cannot be read again."),
    output,
    " ",
    copy,
  );
  return { box, output };
}

export async function render(section, { signal }) {
  const notice = h("div", { class: "notice" });
  const list = h("div", {}, h("p", {}, "Loading…"));
  const create = policyFields();
  const createForm = h(
    "form",
    { class: "card", "aria-labelledby": "create-title" },
    h("h2", { id: "create-title" }, "Create a key"),
    h("div", { class: "grid" }, create.fields),
    h("button", { type: "submit" }, "Create key"),
  );
  const editor = h("div");
  section.append(notice, createForm, editor, list);

  async function refresh() {
    const keys = (await api("/keys", { signal })).data;
    const rows = keys.map((k) =>
      h(
        "tr",
        { dataset: { keyId: k.id } },
        h("td", {}, k.name),
        h("td", {}, h("code", {}, k.label)),
        h("td", {}, k.revoked ? "revoked" : k.disabled ? "disabled" : k.is_admin ? "admin" : "active"),
        h("td", {}, `${fmt.usd(k.usage)} / ${k.limit == null ? "∞" : fmt.usd(k.limit)}`),
        h("td", {}, [k.rate_limit.requests ?? "—", k.rate_limit.tokens ?? "—", k.rate_limit.concurrent ?? "—"].join(" · ")),
        h("td", {}, (k.allowed_models || ["*"]).join(", ")),
        h("td", {}, k.expires_at ? fmt.time(k.expires_at) : "never"),
        h(
          "td",
          { class: "actions" },
          k.revoked
            ? ""
            : [
                h("button", { type: "button", "aria-label": `Edit ${k.name}`, onclick: () => edit(k) }, "Edit"),
                h("button", { type: "button", "aria-label": `Add credits to ${k.name}`, onclick: () => credits(k) }, "Add credits"),
                h("button", { type: "button", class: "danger", "aria-label": `Revoke ${k.name}`, onclick: () => revoke(k) }, "Revoke"),
              ],
        ),
      ),
    );
    list.replaceChildren(table("Keys", ["Name", "Key", "Status", "Spent / limit", "RPM · TPM · concurrent", "Models", "Expires", "Actions"], rows));
  }

  createForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = create.values();
    if (!body.allowed_models.length) delete body.allowed_models;
    try {
      const created = await api("/keys", { method: "POST", body });
      createForm.reset();
      const { box, output } = secretBox(created.key);
      notice.replaceChildren(box);
      output.focus();
      output.select();
      await refresh();
      say(`Key ${created.data.name} created.`);
    } catch (err) {
      notice.replaceChildren(h("p", { class: "error", role: "alert" }, err.message));
    }
  });

  function edit(key) {
    const form = policyFields(key);
    const el = h(
      "form",
      { class: "card", "aria-labelledby": "edit-title" },
      h("h2", { id: "edit-title" }, `Edit ${key.name}`),
      h("div", { class: "grid" }, form.fields),
      h("button", { type: "submit" }, "Save"),
      " ",
      h("button", { type: "button", onclick: () => editor.replaceChildren() }, "Cancel"),
    );
    el.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = form.values();
      if (!body.allowed_models.length) body.allowed_models = null;
      try {
        await api(`/keys/${key.id}`, { method: "PATCH", body });
        editor.replaceChildren();
        await refresh();
        say(`Key ${body.name} saved.`);
      } catch (err) {
        notice.replaceChildren(h("p", { class: "error", role: "alert" }, err.message));
      }
    });
    editor.replaceChildren(el);
    form.first.focus();
  }

  function credits(key) {
    const amount = h("input", { name: "amount", type: "number", min: "0.01", step: "any", required: true });
    const el = h(
      "form",
      { class: "card", "aria-labelledby": "credits-title" },
      h("h2", { id: "credits-title" }, `Add credits to ${key.name}`),
      field("Amount (USD)", amount, "Raises the key's credit limit by this much."),
      h("button", { type: "submit" }, "Add credits"),
      " ",
      h("button", { type: "button", onclick: () => editor.replaceChildren() }, "Cancel"),
    );
    el.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await api(`/keys/${key.id}/credits`, { method: "POST", body: { amount: Number(amount.value) } });
        editor.replaceChildren();
        await refresh();
        say(`Credits added to ${key.name}.`);
      } catch (err) {
        notice.replaceChildren(h("p", { class: "error", role: "alert" }, err.message));
      }
    });
    editor.replaceChildren(el);
    amount.focus();
  }

  async function revoke(key) {
    if (!confirm(`Revoke ${key.name}? Requests with it will be refused.`)) return;
    try {
      await api(`/keys/${key.id}`, { method: "DELETE" });
      await refresh();
      say(`Key ${key.name} revoked.`);
    } catch (err) {
      notice.replaceChildren(h("p", { class: "error", role: "alert" }, err.message));
    }
  }

  await refresh();
}
