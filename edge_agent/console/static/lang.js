// The EN / 中文 switch: one button that toggles, remembered in the edge_lang cookie (which the
// server reads for /console/api/session's "lang").

import { getLang, setLang } from "./i18n.js";

export function bindLangSwitch(changed) {
  const button = document.getElementById("lang-switch");
  const mark = () => {
    button.dataset.lang = getLang();
    for (const span of button.querySelectorAll("[data-lang]")) {
      span.classList.toggle("on", span.dataset.lang === getLang());
    }
  };
  mark();
  button.addEventListener("click", () => {
    const lang = getLang() === "zh" ? "en" : "zh";
    document.cookie = `edge_lang=${lang}; path=/; SameSite=Strict; max-age=31536000`;
    setLang(lang);
    document.body.dataset.lang = lang;
    mark();
    changed(lang);
  });
}
