// A stand-in for Polaris's web components (https://cdn.shopify.com/shopifycloud/polaris.js) in
// the browser test: no components, only a style sheet that lays the `s-` elements out as blocks,
// with their headings, so that the screenshots read like a page. It changes no behaviour.
(() => {
  const style = document.createElement("style");
  style.textContent = `
    body { font-family: sans-serif; margin: 0; background: #f1f1f1; }
    s-app-nav { display: block; padding: 8px 16px; background: #1a1a1a; }
    s-app-nav s-link { color: #fff; margin-right: 16px; }
    s-page { display: block; padding: 16px; }
    s-page[heading]::before { content: attr(heading); display: block; font-size: 20px; font-weight: bold; }
    s-section:not([hidden]), s-paragraph, s-stack, s-box { display: block; }
    s-section:not([hidden]) { background: #fff; border-radius: 8px; padding: 12px 16px; margin: 12px 0; }
    s-section[heading]::before { content: attr(heading); display: block; font-weight: bold; margin-bottom: 8px; }
    s-paragraph { margin: 6px 0; }
    s-text[type="strong"] { font-weight: bold; }
    s-link { color: #005bd3; text-decoration: underline; }
    s-button { display: inline-block; padding: 6px 12px; border-radius: 8px; background: #303030; color: #fff; cursor: pointer; }
    s-list-item { display: list-item; margin-left: 20px; }
  `;
  document.head.append(style);
})();
