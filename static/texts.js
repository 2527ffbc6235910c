// The texts of a page's script, in the admin's language: the server renders them (HTML-escaped)
// as data-* attributes of the script's own <script> element, with {name} placeholders that
// text(name, values) fills in. A text the element does not carry shows its name: the script
// keeps working.
function pageTexts(script) {
  const texts = script ? script.dataset : {};
  return (name, values = {}) =>
    (texts[name] ?? name).replace(/\{(\w+)\}/g, (placeholder, key) => values[key] ?? placeholder);
}
