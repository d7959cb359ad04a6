// The string catalog: `t("key", {name: ...})` looks a key up in the chosen language, falls
// back to English, and fills `{placeholders}`. Strings are always inserted as text (never as
// HTML), so a placeholder value cannot inject markup.
import en from "../locales/en.js";
import fr from "../locales/fr.js";

export const CATALOGS = { en, fr };
let current = en;
let currentLang = "en";

/** Pick a language: an explicit choice, else the browser's first supported preference. */
export function setLanguage(lang) {
  const wanted = lang || (navigator.languages || [navigator.language || "en"]).find(
    (l) => CATALOGS[l.slice(0, 2)],
  ) || "en";
  currentLang = CATALOGS[wanted.slice(0, 2)] ? wanted.slice(0, 2) : "en";
  current = CATALOGS[currentLang];
  return currentLang;
}

export function language() {
  return currentLang;
}

export function t(key, values) {
  let text = current[key] ?? en[key] ?? key;
  if (values) {
    text = text.replace(/\{(\w+)\}/g, (_, name) => (name in values ? String(values[name]) : `{${name}}`));
  }
  return text;
}
