// @jsxImportSource preact
// (JSX compiles to Preact: this line stands in for a tsconfig.json, see the README, Extensions.)
//
// Admin action (admin.product-details.action.render): a modal that asks the app for the shop's
// name and shows it, with a Close button.
//
// How the call is authenticated: in the Shopify admin, `fetch` to the app's own URL adds
// `Authorization: Bearer <session token>` by itself, and a relative URL is resolved against the
// app's application_url (the tunnel during `shopify app dev`). The app verifies the token,
// exchanges it for the shop's offline token when it has none, and asks the Admin API for the
// name. When the app answers 401 with X-Shopify-Retry-Invalid-Session-Request, the admin
// retries once with a fresh token.
import '@shopify/ui-extensions/preact';
import {render} from 'preact';
import {useEffect, useState} from 'preact/hooks';

// Served by src/routes/extensions.rs; tests/it/extensions.rs checks that it still is.
const SHOP_ENDPOINT = '/api/extensions/admin';

export default async () => {
  render(<ShopNameAction />, document.body);
};

function ShopNameAction() {
  // {status: 'loading'} | {status: 'done', shop, name} | {status: 'failed', reason}
  const [state, setState] = useState({status: 'loading'});

  useEffect(() => {
    let active = true;
    fetchShop()
      .then(({shop, name}) => active && setState({status: 'done', shop, name}))
      .catch((error) => active && setState({status: 'failed', reason: describe(error)}));
    return () => {
      active = false;
    };
  }, []);

  return (
    <s-admin-action heading="Shop name" loading={state.status === 'loading'}>
      {state.status === 'done' && (
        <s-stack direction="block" gap="base">
          <s-text type="strong">{state.name ?? state.shop}</s-text>
          <s-text color="subdued">Read by the app through the Admin API for {state.shop}.myshopify.com.</s-text>
        </s-stack>
      )}
      {state.status === 'failed' && (
        <s-banner tone="critical" heading="The app did not answer">
          {state.reason}
        </s-banner>
      )}
      <s-button slot="primary-action" onClick={() => shopify.close()}>
        Close
      </s-button>
    </s-admin-action>
  );
}

/** The app's answer: `{shop, name}` (`name` is null when the Admin API did not return one). */
async function fetchShop() {
  const response = await fetch(SHOP_ENDPOINT, {method: 'POST'});
  if (!response.ok) {
    throw new Error(`${SHOP_ENDPOINT} answered ${response.status}`);
  }
  return response.json();
}

function describe(error) {
  return error instanceof Error ? error.message : String(error);
}
