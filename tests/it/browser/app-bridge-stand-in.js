// A stand-in for App Bridge (https://cdn.shopify.com/shopifycloud/app-bridge.js) in the browser
// test, which serves it in place of the CDN script with the session token it minted
// (SESSION_TOKEN below). It does what the app's pages rely on App Bridge for:
// - `shopify.idToken()` answers the session token;
// - `fetch` to the page's own origin carries `Authorization: Bearer <session token>`;
// - `shopify.toast.show(...)` is recorded;
// - on a page with `shopify-reload` (the patch-id-token page), it gets a session token and goes
//   back to that path of the app with `id_token` added.
// What it saw is in `window.appBridgeStandIn`, and the bounce in sessionStorage (it outlives the
// page), for the test to read.
(() => {
  const sessionToken = "SESSION_TOKEN";
  const script = document.currentScript;
  const seen = {
    apiKey: script ? script.dataset.apiKey : null,
    idTokenCalls: 0,
    toasts: [],
    authorizedFetches: [],
  };
  window.appBridgeStandIn = seen;

  const idToken = async () => {
    seen.idTokenCalls += 1;
    return sessionToken;
  };

  window.shopify = {
    config: { apiKey: seen.apiKey },
    idToken,
    toast: {
      show(message, options = {}) {
        seen.toasts.push({ message: String(message), isError: Boolean(options.isError) });
        return `toast-${seen.toasts.length}`;
      },
      hide() {},
    },
  };

  const pageFetch = window.fetch.bind(window);
  window.fetch = async (input, init) => {
    const request = new Request(input, init);
    if (new URL(request.url).origin !== location.origin) {
      return pageFetch(request);
    }
    const headers = new Headers(request.headers);
    headers.set("Authorization", `Bearer ${await idToken()}`);
    seen.authorizedFetches.push(`${request.method} ${new URL(request.url).pathname}`);
    return pageFetch(new Request(request, { headers }));
  };

  const reload = new URLSearchParams(location.search).get("shopify-reload");
  if (reload !== null) {
    idToken().then((token) => {
      const target = new URL(reload, location.origin);
      if (target.origin !== location.origin) {
        throw new Error(`shopify-reload leaves the app: ${reload}`);
      }
      target.searchParams.set("id_token", token);
      const bounce = {
        from: location.pathname,
        apiKey: seen.apiKey,
        idTokenCalls: seen.idTokenCalls,
        to: target.href,
      };
      sessionStorage.setItem("appBridgeStandIn.bounce", JSON.stringify(bounce));
      location.replace(target.href);
    });
  }
})();
