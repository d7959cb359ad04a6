// The copilot widget loader: one <script> tag on any page adds a chat button and panel.
//
//   <script src="https://chat.example.com/ui/widget.js" data-title="Help" data-lang="fr"
//           data-theme="dark" defer></script>
//
// A classic script (not a module), so it can find its own URL (document.currentScript) and
// from it the Triolet server to talk to. Everything it shows lives in a shadow root: the
// host page's CSS cannot reach in and ours cannot leak out. The chat code itself is loaded
// only when the panel first opens, so the host page pays for one small file until then.
// Cross-origin: the modules are served with Access-Control-Allow-Origin, and the WebSocket
// is accepted when the host page's origin is in the server's [server] allowed_origins.
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.src) return;
  var src = new URL(script.src, location.href);
  var base = src.href.replace(/\/ui\/widget\.js(\?.*)?$/, "");
  var options = {
    base: base,
    title: script.dataset.title || "",
    lang: script.dataset.lang || "",
    theme: script.dataset.theme || "",
  };

  function start() {
    var host = document.createElement("div");
    host.setAttribute("data-triolet-widget", "");
    document.body.appendChild(host);
    var shadow = host.attachShadow({ mode: "open" });
    ["app/chat.css", "app/widget.css"].forEach(function (file) {
      var link = document.createElement("link");
      link.rel = "stylesheet";
      link.href = base + "/ui/" + file;
      shadow.appendChild(link);
    });
    [["light", "github.min.css"], ["dark", "github-dark.min.css"]].forEach(function (pair) {
      var link = document.createElement("link");
      link.rel = "stylesheet";
      link.href = base + "/ui/vendor/highlight/" + pair[1];
      link.setAttribute("data-hl", pair[0]);
      link.media = "not all";
      shadow.appendChild(link);
    });
    var launcher = document.createElement("button");
    launcher.type = "button";
    launcher.className = "launcher";
    launcher.setAttribute("aria-expanded", "false");
    launcher.setAttribute("aria-controls", "triolet-panel");
    launcher.setAttribute("aria-label", "Chat");
    launcher.textContent = "💬";
    var panel = document.createElement("div");
    panel.className = "panel";
    panel.id = "triolet-panel";
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-label", options.title || "Chat");
    panel.hidden = true;
    shadow.appendChild(panel);
    shadow.appendChild(launcher);

    var mounted = null;
    function open() {
      panel.hidden = false;
      launcher.setAttribute("aria-expanded", "true");
      if (!mounted) {
        mounted = import(base + "/ui/app/widget_main.js").then(function (mod) {
          return mod.mount(panel, shadow, options, close);
        });
      }
      mounted.then(function (widget) {
        launcher.setAttribute("aria-label", widget.strings.close);
        widget.focus();
      });
    }
    function close() {
      panel.hidden = true;
      launcher.setAttribute("aria-expanded", "false");
      if (mounted) mounted.then(function (widget) { launcher.setAttribute("aria-label", widget.strings.open); });
      launcher.focus();
    }
    launcher.addEventListener("click", function () {
      if (panel.hidden) open();
      else close();
    });
    panel.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && !event.defaultPrevented) close();
    });
  }

  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
})();
