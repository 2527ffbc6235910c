// Plans: the "Cancel the plan" button. App Bridge adds the session token to the fetch. The
// toasts' texts come with the page, in the admin's language (static/texts.js).
const text = pageTexts(document.currentScript);
const cancel = document.getElementById("cancel-plan");

if (cancel) {
  cancel.addEventListener("click", async () => {
    cancel.loading = true;
    try {
      const response = await fetch("/api/plans/cancel", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ subscription_id: cancel.dataset.subscriptionId }),
      });
      const body = await response.json();
      if (!response.ok) {
        const message = (body.errors || []).map((e) => e.message).join(", ") || response.statusText;
        shopify.toast.show(text("notCancelled", { message }), { isError: true });
        return;
      }
      shopify.toast.show(text("cancelled"));
      window.location.reload();
    } catch (error) {
      shopify.toast.show(text("networkError"), { isError: true });
    } finally {
      cancel.loading = false;
    }
  });
}
