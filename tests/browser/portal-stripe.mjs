// The portal's "Buy credits" with Stripe configured, in Chromium: the purchase's Checkout
// Session page is where the browser goes. The page may reach only the server, so the hand-off
// shows as the one request to another origin, which is aborted and recorded.
//
// Inputs: argv[2] the server's base URL; URL the portal link; CHECKOUT the start of the
// Checkout page's URL. Prints RESULT with the page it was sent to, the foreign requests, and
// any page error.
import { openPage, result, run, WAIT_MS } from './lib.mjs';

const base = process.argv[2];
const { URL: PORTAL_URL, CHECKOUT } = process.env;

run(async () => {
  const { browser, page, problems, foreign } = await openPage(base);
  await page.goto(PORTAL_URL, { waitUntil: 'load' });
  await page.waitForSelector('[data-testid="total"]', { timeout: WAIT_MS });
  await page.click('nav a[href="#/buy"]');
  await page.waitForSelector('button[data-package]', { timeout: WAIT_MS });
  const checkoutNote = await page.locator('[data-testid="checkout-note"]').first().textContent();
  const [request] = await Promise.all([
    page.waitForRequest((r) => r.url().startsWith(CHECKOUT), { timeout: WAIT_MS }),
    page.click('button[data-package]'),
  ]);
  const seen = { checkoutNote, sentTo: request.url(), navigation: request.isNavigationRequest() };
  await browser.close();
  // The aborted navigation's own console line is the hand-off, not a problem of the page.
  result({ ...seen, problems: problems.filter((p) => !p.includes(seen.sentTo)), foreign: foreign() });
});
