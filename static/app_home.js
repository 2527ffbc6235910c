// App Home: the "Generate a product" button. App Bridge adds the session token
// (Authorization: Bearer ...) to same-origin fetch requests, and retries them with a
// fresh token when the server answers 401 with X-Shopify-Retry-Invalid-Session-Request.
// The toasts' texts come with the page, in the admin's language (static/texts.js).
const text = pageTexts(document.currentScript);
const button = document.getElementById("create-product");

button.addEventListener("click", async () => {
  button.loading = true;
  try {
    const response = await fetch("/api/products", { method: "POST" });
    const body = await response.json();
    if (!response.ok) {
      const message = (body.errors || []).map((e) => e.message).join(", ") || response.statusText;
      shopify.toast.show(text("notCreated", { message }), { isError: true });
      return;
    }
    const product = body.product;
    document.getElementById("product-title").textContent = product.title;
    const id = product.id.split("/").pop();
    document.getElementById("product-link").href = `shopify://admin/products/${id}`;
    document.getElementById("product-json").textContent = JSON.stringify(product, null, 2);
    document.getElementById("product-section").hidden = false;
    shopify.toast.show(text("created"));
  } catch (error) {
    shopify.toast.show(text("networkError"), { isError: true });
  } finally {
    button.loading = false;
  }
});

// Back from a third-party provider's consent screen (see "Connecting a provider" in the
// README): the provider's token waits until this embedded page, authenticated by its session
// token, confirms that this shop and staff member started the connection.
const returned = new URLSearchParams(location.search);
const provider = returned.get("connect");
const pending = returned.get("pending");
if (provider && pending) {
  fetch(`/api/connections/${encodeURIComponent(provider)}/confirm`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ pending }),
  }).then((response) => {
    const message = response.ok ? text("connected", { provider }) : text("notConnected", { provider });
    shopify.toast.show(message, { isError: !response.ok });
  });
}
