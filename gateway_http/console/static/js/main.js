// The console's shell: sign-in, the page list, and a hash router (#/overview, ...).
import { api, ApiError, session } from "./api.js";
import { field, h, say } from "./dom.js";
import * as overview from "./pages/overview.js";
import * as keys from "./pages/keys.js";
import * as generations from "./pages/generations.js";
import * as models from "./pages/models.js";
import * as playground from "./pages/playground.js";

const PAGES = {
  overview: { title: "Overview", page: overview },
  keys: { title: "Keys", page: keys, admin: true },
  generations: { title: "Generations", page: generations },
  models: { title: "Models and providers", page: models },
  playground: { title: "Playground", page: playground },
};

const main = document.getElementById("main");
let controller = null; // aborts the previous page's requests when the page changes

function signInForm(message) {
  const input = h("input", { type: "password", name: "key", autocomplete: "off", required: true, spellcheck: "false" });
  const error = h("p", { class: "error", role: "alert" }, message || "");
  const form = h(
    "form",
    { class: "card signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in"),
    h("p", {}, "Sign in with a Switchyard API key. An admin key sees every key; any other key sees its own usage."),
    field("API key", input, "Kept in this tab only (sessionStorage) and sent as an Authorization header."),
    h("button", { type: "submit" }, "Sign in"),
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      const me = await api("/key", { key: input.value.trim() });
      session.key = input.value.trim();
      session.me = me.data;
      location.hash = "#/overview";
      route();
    } catch (err) {
      error.textContent = err instanceof ApiError && err.status === 401 ? "That key is not valid." : err.message;
      input.focus();
    }
  });
  main.replaceChildren(form);
  input.focus();
}

function signOut() {
  session.key = null;
  session.me = null;
  showChrome(false);
  location.hash = "";
  signInForm("Signed out.");
}

function showChrome(signedIn) {
  const nav = document.getElementById("nav");
  nav.hidden = !signedIn;
  document.getElementById("signout").hidden = !signedIn;
  const who = document.getElementById("who");
  who.hidden = !signedIn;
  if (signedIn) {
    const me = session.me;
    who.textContent = `${me.name || me.label} (${me.is_admin ? "admin" : "key"})`;
    for (const link of nav.querySelectorAll("[data-admin]")) link.hidden = !me.is_admin;
  }
}

async function route() {
  if (!session.key) {
    showChrome(false);
    signInForm();
    return;
  }
  if (!session.me) {
    try {
      session.me = (await api("/key")).data;
    } catch (err) {
      session.key = null;
      showChrome(false);
      signInForm(err instanceof ApiError && err.status === 401 ? "Your key is no longer valid." : err.message);
      return;
    }
  }
  showChrome(true);
  const name = location.hash.replace(/^#\//, "").split("?")[0] || "overview";
  const entry = PAGES[name] && !(PAGES[name].admin && !session.me.is_admin) ? PAGES[name] : PAGES.overview;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.getAttribute("href") === `#/${name}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  controller?.abort();
  controller = new AbortController();
  document.title = `${entry.title} · Switchyard console`;
  const section = h("section", { "aria-labelledby": "page-title" }, h("h1", { id: "page-title" }, entry.title));
  main.replaceChildren(section);
  try {
    await entry.page.render(section, { signal: controller.signal, me: session.me });
  } catch (err) {
    if (err.name === "AbortError") return;
    if (err instanceof ApiError && err.status === 401) {
      signOut();
      return;
    }
    section.append(h("p", { class: "error", role: "alert" }, err.message));
  }
  say(`${entry.title} loaded.`);
  // Focus goes to the new page, unless the page itself put it on one of its controls.
  if (!main.contains(document.activeElement)) main.focus();
}

document.getElementById("signout").addEventListener("click", signOut);
window.addEventListener("hashchange", route);
route();
