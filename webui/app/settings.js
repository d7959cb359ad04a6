// The chat settings panel: a form built from the session's `settings` event
// ({values, schema}, docs/PROTOCOL.md) and a `settings` frame back when the user saves.
//
// The schema is a JSON Schema object; each property becomes one control: enum -> select,
// boolean -> checkbox, integer/number -> number input (minimum/maximum), anything else -> text.
// Labels come from `title` (else the id) and hints from `description`, always as text.
import { h } from "./dom.js";
import { t } from "./i18n.js";

export class SettingsPanel {
  /** @param {(values: object) => void} onSave */
  constructor(onSave) {
    this.onSave = onSave;
    this.form = h("form", { class: "settings-form" });
    this.element = h("section", { class: "settings-panel", hidden: true, role: "dialog", "aria-label": t("settings.title") }, [h("h2", {}, t("settings.title")), this.form]);
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.onSave(this.read());
      this.close();
    });
    this.form.addEventListener("click", (e) => {
      if (e.target.closest("[data-settings-cancel]")) this.close();
    });
    this.element.addEventListener("keydown", (e) => {
      if (e.key === "Escape") this.close();
    });
  }

  /** Rebuild the form for a new `settings` event. */
  show(settings) {
    this.settings = settings;
    const schema = (settings && settings.schema) || {};
    const props = schema.properties || {};
    const values = (settings && settings.values) || {};
    // Fields the schema does not describe are still shown (as text) so nothing is hidden.
    const ids = [...new Set([...Object.keys(props), ...Object.keys(values)])];
    const fields = ids.map((id) => this.field(id, props[id] || {}, values[id]));
    this.form.replaceChildren(
      ...fields,
      h("div", { class: "settings-buttons" }, [h("button", { type: "submit", class: "primary" }, t("settings.save")), h("button", { type: "button", "data-settings-cancel": "" }, t("settings.cancel"))]),
    );
  }

  field(id, spec, value) {
    const inputId = `setting-${id}`;
    const label = h("label", { for: inputId }, spec.title || id);
    const hint = spec.description ? h("small", { id: `${inputId}-hint` }, spec.description) : null;
    const common = { id: inputId, name: id, "data-setting": id, "data-type": spec.type || typeof value, "aria-describedby": hint ? `${inputId}-hint` : null };
    let control;
    if (Array.isArray(spec.enum)) {
      control = h("select", common, spec.enum.map((option) => h("option", { value: JSON.stringify(option), selected: option === value }, String(option))));
      control.dataset.type = "enum";
    } else if (spec.type === "boolean" || typeof value === "boolean") {
      control = h("input", { ...common, type: "checkbox", checked: !!value });
      return h("div", { class: "setting setting-check" }, [control, label, hint]);
    } else if (spec.type === "integer" || spec.type === "number" || typeof value === "number") {
      control = h("input", { ...common, type: "number", value: value ?? "", min: spec.minimum, max: spec.maximum, step: spec.type === "integer" ? "1" : spec.multipleOf || "any" });
    } else {
      control = h("input", { ...common, type: "text", value: value ?? "" });
    }
    return h("div", { class: "setting" }, [label, control, hint]);
  }

  read() {
    const values = {};
    for (const control of this.form.querySelectorAll("[data-setting]")) {
      const id = control.dataset.setting;
      const type = control.dataset.type;
      if (type === "enum") values[id] = JSON.parse(control.value);
      else if (control.type === "checkbox") values[id] = control.checked;
      else if (type === "integer") values[id] = parseInt(control.value, 10);
      else if (type === "number") values[id] = Number(control.value);
      else values[id] = control.value;
    }
    return values;
  }

  open(returnFocus) {
    this.returnFocus = returnFocus;
    this.element.hidden = false;
    const first = this.form.querySelector("input, select, button");
    if (first) first.focus();
  }

  close() {
    this.element.hidden = true;
    if (this.returnFocus) this.returnFocus.focus();
  }
}
