// @jsxImportSource preact
// (JSX compiles to Preact: this line stands in for a tsconfig.json, see the README, Extensions.)
//
// Checkout block (purchase.checkout.block.render): asks the app for a message and shows it.
//
// How the call is authenticated: checkout adds no credentials of its own, so the extension
// asks Shopify for the buyer's session token (shopify.sessionToken.get(), cached and renewed
// by Shopify) and sends it as `Authorization: Bearer`. The app verifies it (signature with the
// app's secret, audience, expiry, the shop in `dest`) and answers with CORS headers.
//
// Where the app is: a checkout extension runs on Shopify's CDN, so a relative URL would not
// reach the app. The Shopify CLI replaces `process.env.APP_URL` when it bundles the extension:
// `shopify app dev` sets it to the dev tunnel, and for `shopify app deploy` it comes from the
// environment or the app's .env file (APP_URL=https://your-app.example.com).
import '@shopify/ui-extensions/preact';
import {render} from 'preact';
import {useEffect, useState} from 'preact/hooks';

// Served by src/routes/extensions.rs; tests/it/extensions.rs checks that it still is.
const MESSAGE_PATH = '/api/extensions/checkout';

export default async () => {
  render(<CheckoutMessage />, document.body);
};

function CheckoutMessage() {
  const [message, setMessage] = useState(undefined);

  useEffect(() => {
    let active = true;
    fetchMessage()
      .then((text) => active && setMessage(text))
      .catch((error) => {
        // Buyers see nothing when the app cannot be reached; the reason is in the console.
        console.error('checkout-message:', error);
        if (active) setMessage(null);
      });
    return () => {
      active = false;
    };
  }, []);

  if (message === undefined) {
    return <s-skeleton-paragraph />;
  }
  if (message === null) {
    return null;
  }
  return (
    <s-banner tone="info" heading="From the app">
      <s-text>{message}</s-text>
    </s-banner>
  );
}

/** The app's answer is `{shop, message}`; this returns the message. */
async function fetchMessage() {
  const base = appUrl();
  if (!base) {
    throw new Error('APP_URL was not set when the extension was built (see the README, Extensions)');
  }
  const token = await shopify.sessionToken.get();
  const response = await fetch(`${base}${MESSAGE_PATH}`, {
    method: 'POST',
    headers: {Authorization: `Bearer ${token}`},
  });
  if (!response.ok) {
    throw new Error(`${MESSAGE_PATH} answered ${response.status}`);
  }
  const {message} = await response.json();
  return message;
}

/** The app's origin, fixed at build time, without a trailing slash. */
function appUrl() {
  let url;
  try {
    // Replaced by a string literal when the CLI defines APP_URL; otherwise `process` does not
    // exist where the extension runs.
    url = process.env.APP_URL;
  } catch {
    url = undefined;
  }
  return typeof url === 'string' ? url.replace(/\/+$/, '') : undefined;
}
