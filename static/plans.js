// Plans: the "Cancel the plan" button. App Bridge adds the session token to the fetch.
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
        shopify.toast.show(`Could not cancel: ${message}`, { isError: true });
        return;
      }
      shopify.toast.show("Plan cancelled");
      window.location.reload();
    } catch (error) {
      shopify.toast.show("Network error", { isError: true });
    } finally {
      cancel.loading = false;
    }
  });
}
