// Calls to the gateway's API, with an API key when the server asks for one (401). The key is asked for
// once and kept in sessionStorage: it lives as long as this tab, is never written to disk, and is sent
// to this origin only.
"use strict";

const API_KEY_ITEM = "digits-api-key";
let askingForKey = null; // one question at a time, however many requests were refused together

function askForKey(refused) {
  if (!askingForKey) {
    askingForKey = new Promise((resolve) => {
      const entered = window.prompt(refused ? "That API key was refused. API key:" : "This server needs an API key:");
      if (entered && entered.trim()) sessionStorage.setItem(API_KEY_ITEM, entered.trim());
      resolve(Boolean(entered && entered.trim()));
    }).finally(() => {
      askingForKey = null;
    });
  }
  return askingForKey;
}

async function apiFetch(url, options = {}) {
  for (let attempt = 0; ; attempt++) {
    const key = sessionStorage.getItem(API_KEY_ITEM);
    const headers = new Headers(options.headers || {});
    if (key) headers.set("Authorization", `Bearer ${key}`);
    const response = await fetch(url, { ...options, headers });
    if (response.status !== 401 || attempt >= 2) return response;
    if (sessionStorage.getItem(API_KEY_ITEM) !== key) continue; // a key was entered meanwhile: try that one
    if (!(await askForKey(Boolean(key)))) return response;
  }
}
