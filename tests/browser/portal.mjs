// The customer portal in Chromium, with the network cut off from everything but the server: a
// user opens the portal link (token in the fragment), sees the balance and bars, checks in and
// sees the bar change, is refused a second check-in with the server's message, watches a spend
// the backend makes arrive live (no reload), buys credits (a simulated payment when the server
// offers one), and the page holds up on a phone-sized screen and under axe-core.
//
// Inputs: argv[2] the server's base URL; URL the portal link (…/portal#token=…); REASON the
// reason of a grant that holds markup (it must show as text); SIMULATED "1" when the program's
// checkout is SIMULATED; PORTAL_SCREENSHOTS a folder for docs/portal-*.png (optional).
// Steps: "loaded", "checked-in", "refused", "ready-for-spend" (the Rust test then spends),
// "live", "bought", "phone", then RESULT.
import { join } from 'node:path';
import { axe, openPage, result, run, step, WAIT_MS } from './lib.mjs';

const base = process.argv[2];
const { URL: PORTAL_URL, EXPIRED_URL, REASON, SIMULATED, PORTAL_SCREENSHOTS } = process.env;

const text = (page, selector) => page.locator(selector).first().textContent({ timeout: WAIT_MS });


async function shoot(page, name) {
  if (PORTAL_SCREENSHOTS) await page.screenshot({ path: join(PORTAL_SCREENSHOTS, `portal-${name}.png`), fullPage: true });
}

run(async () => {
  const { browser, page, requests, websockets, problems, foreign } = await openPage(base);
  const response = await page.goto(PORTAL_URL, { waitUntil: 'load' });
  if (response.status() !== 200) throw new Error(`GET /portal answered ${response.status()}`);
  await page.waitForSelector('[data-testid="total"]', { timeout: WAIT_MS });
  await page.waitForSelector('#live[data-state="live"]', { timeout: WAIT_MS });
  const addressBar = page.url();
  const stored = await page.evaluate(() => sessionStorage.getItem('credits.portal.token'));
  const totalAtStart = await text(page, '[data-testid="total"]');
  const scopedShown = await text(page, '[data-testid="scoped"]');
  const upcomingShown = await text(page, '[data-testid="upcoming"]');
  const reasonShown = (await page.locator('.activity-reason', { hasText: REASON }).count()) > 0;
  const images = await page.locator('main img').count();
  step('loaded');

  // A check-in: the bar for check-in credits appears, the total changes.
  await page.click('[data-testid="check-in"]');
  await page.waitForSelector('[data-testid="claim-check-in"] .outcome-ok', { timeout: WAIT_MS });
  await page.waitForSelector('.bar[data-source="CHECK_IN"]', { timeout: WAIT_MS });
  const checkInBar = await text(page, '.bar[data-source="CHECK_IN"] .bar-amount');
  const totalAfterCheckIn = await text(page, '[data-testid="total"]');
  step('checked-in');

  // A second one the same day: the server refuses, and its message is shown.
  await page.click('[data-testid="check-in"]');
  await page.waitForSelector('[data-testid="claim-check-in"] .outcome-error', { timeout: WAIT_MS });
  const refusal = await text(page, '[data-testid="claim-check-in"] .outcome-error');
  const announced = await text(page, '#messages');
  step('refused');

  // The backend spends; the page shows it without a reload.
  await page.evaluate(() => {
    window.portalNotReloaded = true;
  });
  const totalBeforeSpend = await text(page, '[data-testid="total"]');
  step('ready-for-spend');
  await page.waitForFunction((before) => document.querySelector('[data-testid="total"]')?.textContent !== before, totalBeforeSpend, { timeout: WAIT_MS });
  const totalAfterSpend = await text(page, '[data-testid="total"]');
  const notReloaded = await page.evaluate(() => window.portalNotReloaded === true);
  // The rest of the page follows: the spend shows in the recent activity.
  await page.waitForSelector('.activity-what:text-matches("^Spent")', { timeout: WAIT_MS });
  const lastActivity = await text(page, '.activity-item');
  step('live');
  await shoot(page, 'overview');
  const axeOverview = await axe(page);

  // Buying: a package, then the simulated payment when the server offers one.
  await page.click('nav a[href="#/buy"]');
  await page.waitForSelector('[data-testid="custom"]', { timeout: WAIT_MS });
  await page.fill('#custom-credits', '75');
  const customPrice = await text(page, '#custom-price');
  const checkoutNote = await text(page, '[data-testid="checkout-note"]');
  await page.click('button[data-package]');
  await page.waitForSelector('[data-testid="pending"]', { timeout: WAIT_MS });
  let paid = null;
  if (SIMULATED === '1') {
    await page.click('[data-testid="simulate"]');
    await page.waitForSelector('[data-testid="pending"] .outcome-ok', { timeout: WAIT_MS });
    paid = await text(page, '[data-testid="pending"] .outcome-ok');
    // The history is drawn again after the payment.
    await page.waitForSelector('.purchase[data-status="PAID"]', { timeout: WAIT_MS });
  }
  await page.waitForSelector('.purchase', { timeout: WAIT_MS });
  const purchases = await page.locator('.purchase .status').allTextContents();
  await shoot(page, 'buy');
  const axeBuy = await axe(page);
  // A refund inside the program's window (the server decides; it says why when it refuses).
  let refunded = null;
  if (SIMULATED === '1') {
    await page.click('button[data-refund]');
    await page.waitForSelector('.purchase[data-status="REFUNDED"]', { timeout: WAIT_MS });
    refunded = await page.locator('.purchase[data-status="REFUNDED"]').first().textContent();
  }
  await page.click('nav a[href="#/overview"]');
  await page.waitForSelector('[data-testid="total"]', { timeout: WAIT_MS });
  const totalAfterBuying = await text(page, '[data-testid="total"]');
  step('bought');

  // A phone: nothing wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(200);
  const phone = {};
  for (const route of ['overview', 'buy', 'history']) {
    await page.evaluate((route) => {
      location.hash = `#/${route}`;
    }, route);
    await page.waitForFunction((route) => document.getElementById('page').dataset.page === route, route, { timeout: WAIT_MS });
    phone[route] = await page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, clientWidth: document.documentElement.clientWidth }));
  }
  await page.evaluate(() => {
    location.hash = '#/overview';
  });
  await page.waitForFunction(() => document.getElementById('page').dataset.page === 'overview', null, { timeout: WAIT_MS });
  await page.waitForSelector('[data-testid="total"]', { timeout: WAIT_MS });
  await shoot(page, 'phone');
  const axePhone = await axe(page);
  step('phone');

  // The link's token is gone from the address bar; a reload keeps the session (this tab's
  // storage), and a new tab without the fragment gets the expired-link page.
  const fresh = await browser.contexts()[0].newPage();
  await fresh.goto(new URL('/portal', base).href, { waitUntil: 'load' });
  await fresh.waitForSelector('.expired', { timeout: WAIT_MS });
  const expiredText = await fresh.locator('.expired h1').textContent();
  // A link whose token has expired: the same page, and the token is not kept.
  await fresh.goto(EXPIRED_URL, { waitUntil: 'load' });
  await fresh.waitForSelector('.expired', { timeout: WAIT_MS });
  const expiredLink = {
    heading: await fresh.locator('.expired h1').textContent(),
    stored: await fresh.evaluate(() => sessionStorage.getItem('credits.portal.token')),
    addressBar: fresh.url(),
  };
  await fresh.close();

  // The page's own formatting, run in the page (the module is this server's, so the policy
  // lets it load): money and prices by string arithmetic, never floats.
  const formats = await page.evaluate(async () => {
    const dom = await import('/portal/js/dom.js');
    return {
      money: [dom.formatMoney(150, 'USD'), dom.formatMoney(5, 'USD'), dom.formatMoney(123456789, 'USD'), dom.formatMoney(1500, 'JPY'), dom.formatMoney(-250, 'EUR')],
      price: [dom.priceMinor('75', '2'), dom.priceMinor('3', '0.5'), dom.priceMinor('1000', '0.2'), dom.priceMinor('0.1', '0.5'), dom.priceMinor('33.333333', '0.3')].map(String),
      credits: [dom.formatCredits('1234.500'), dom.formatCredits('-3'), dom.formatCredits('0.000001'), dom.formatCredits('10.0')],
      text: dom.h('p', {}, '<b>bold</b>').outerHTML,
    };
  });

  await browser.close();
  result({
    addressBar,
    stored: stored !== null,
    totalAtStart,
    scopedShown,
    upcomingShown,
    reasonShown,
    images,
    checkInBar,
    totalAfterCheckIn,
    refusal,
    announced,
    totalBeforeSpend,
    totalAfterSpend,
    notReloaded,
    lastActivity,
    refunded,
    customPrice,
    checkoutNote,
    paid,
    purchases,
    totalAfterBuying,
    phone,
    expiredText,
    expiredLink,
    formats,
    axe: { overview: axeOverview, buy: axeBuy, phone: axePhone },
    requests,
    websockets,
    problems,
    foreign: foreign(),
  });
});
