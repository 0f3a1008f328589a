// The portal's Settings page in Chromium: auto top-up refused for a bad amount (the server's
// BAD_USER_INPUT shown, the field marked), then saved; spend limits refused for a duplicate, then
// saved, and (after the Rust test spends and fails a payment) shown with what they used; a gift
// whose answer is lost on the way back, sent again with the same idempotency key, and a gift to
// an account that does not exist. With MODE=nogifts only: the page without the gift form.
//
// Inputs: argv[2] the server's base URL; URL the portal link; MODE "gifts" or "nogifts";
// RECIPIENT the account to give to; PORTAL_SCREENSHOTS a folder for docs/portal-settings.png
// (optional).
// Steps (MODE=gifts): "auto-refused", "auto-saved", "limits-refused", "limits-saved" (the Rust
// test then spends, fails the top-up's payment, and resumes the script with "spent"),
// "gift-sent", then RESULT.
import { join } from 'node:path';
import { axe, openPage, result, resumed, run, step, WAIT_MS } from './lib.mjs';

const base = process.argv[2];
const { URL: PORTAL_URL, MODE, RECIPIENT, PORTAL_SCREENSHOTS } = process.env;

/** Waits for an outcome line to show a new answer (it is cleared first), and reads it. */
async function submitAndRead(page, form, outcome) {
  await page.evaluate((id) => {
    const line = document.getElementById(id);
    line.className = 'outcome';
    line.textContent = '';
  }, outcome);
  await page.click(`#${form} button[type="submit"]`);
  await page.waitForSelector(`#${outcome}.outcome-ok, #${outcome}.outcome-error`, { timeout: WAIT_MS });
  return page.evaluate(
    ([form, id]) => {
      const line = document.getElementById(id);
      return {
        text: line.textContent,
        ok: line.classList.contains('outcome-ok'),
        code: line.dataset.code || null,
        invalid: [...document.querySelectorAll(`#${form} [aria-invalid="true"]`)].map((el) => el.id),
        focused: document.activeElement ? document.activeElement.id : null,
      };
    },
    [form, outcome],
  );
}

async function openSettings(page) {
  await page.evaluate(() => {
    location.hash = '#/overview';
  });
  await page.waitForFunction(() => document.getElementById('page').dataset.page === 'overview', null, { timeout: WAIT_MS });
  await page.click('nav a[href="#/settings"]');
  await page.waitForFunction(() => document.getElementById('page').dataset.page === 'settings', null, { timeout: WAIT_MS });
}

const limitRows = (page) =>
  page.evaluate(() =>
    [...document.querySelectorAll('#spend-limits-now tr[data-limit]')].map((tr) => ({
      limit: tr.dataset.limit,
      max: tr.querySelector('[data-field="max"]').textContent,
      used: tr.querySelector('[data-field="used"]').textContent,
      remaining: tr.querySelector('[data-field="remaining"]').textContent,
      exceeded: tr.dataset.exceeded,
    })),
  );

const autoState = (page) =>
  page.evaluate(() => ({
    enabled: document.getElementById('auto-top-up-status')?.dataset.enabled ?? null,
    status: document.getElementById('auto-top-up-status')?.textContent ?? null,
    bought: document.getElementById('auto-top-up-bought')?.textContent ?? null,
    failures: document.getElementById('auto-top-up-failures')?.textContent ?? null,
    pending: document.getElementById('auto-top-up-pending')?.dataset.purchase ?? null,
  }));

run(async () => {
  const { browser, page, problems, foreign } = await openPage(base);
  await page.goto(PORTAL_URL, { waitUntil: 'load' });
  await page.waitForSelector('[data-testid="total"]', { timeout: WAIT_MS });
  const nav = await page.locator('nav a').allTextContents();
  await openSettings(page);
  const seen = { nav, gift: await page.locator('#gift-form').count(), first: await autoState(page), axe: {} };
  seen.axe.first = await axe(page);
  if (MODE === 'nogifts') {
    await browser.close();
    result({ ...seen, problems, foreign: foreign() });
    return;
  }

  // Auto top-up: every control reached by the keyboard; an amount under the minimum purchase.
  await page.focus('#auto-top-up-enabled');
  await page.keyboard.press('Space');
  seen.enabledByKeyboard = await page.isChecked('#auto-top-up-enabled');
  await page.fill('#auto-top-up-threshold', '250');
  await page.check('#auto-top-up-by-amount');
  await page.fill('#auto-top-up-amount', '10');
  await page.fill('#auto-top-up-cap', '500');
  seen.autoRefused = await submitAndRead(page, 'auto-top-up-form', 'auto-top-up-outcome');
  // A malformed amount is caught before it is sent.
  await page.fill('#auto-top-up-amount', '1,5');
  seen.autoMalformed = await submitAndRead(page, 'auto-top-up-form', 'auto-top-up-outcome');
  step('auto-refused');
  await page.fill('#auto-top-up-amount', '100');
  seen.autoSaved = await submitAndRead(page, 'auto-top-up-form', 'auto-top-up-outcome');
  seen.autoAfterSave = await autoState(page);
  step('auto-saved');

  // Spend limits: two for the same feature and period, then a valid set.
  await page.click('#limit-add');
  seen.limitFocus = await page.evaluate(() => document.activeElement.id);
  await page.fill('#limit-feature-0', 'chat');
  await page.selectOption('#limit-period-0', 'DAY');
  await page.fill('#limit-max-0', '30');
  await page.click('#limit-add');
  await page.fill('#limit-feature-1', 'chat');
  await page.selectOption('#limit-period-1', 'DAY');
  await page.fill('#limit-max-1', '40');
  seen.limitsRefused = await submitAndRead(page, 'spend-limits-form', 'spend-limits-outcome');
  step('limits-refused');
  await page.selectOption('#limit-period-1', 'MONTH');
  await page.click('#limit-add');
  await page.fill('#limit-max-2', '300');
  await page.fill('#spend-limits-max-per-charge', '10');
  seen.limitsSaved = await submitAndRead(page, 'spend-limits-form', 'spend-limits-outcome');
  seen.limitsAfterSave = await limitRows(page);
  step('limits-saved');

  // Read again, once the Rust test has spent and failed the payment (it says so on stdin).
  await resumed('spent');
  await openSettings(page);
  seen.limitsLater = await limitRows(page);
  seen.perCharge = await page.getAttribute('#spend-limits-per-charge', 'data-max');
  seen.autoLater = await autoState(page);
  seen.formLater = {
    enabled: await page.isChecked('#auto-top-up-enabled'),
    threshold: await page.inputValue('#auto-top-up-threshold'),
    amount: await page.inputValue('#auto-top-up-amount'),
    cap: await page.inputValue('#auto-top-up-cap'),
    limits: await page.locator('.limit-row').count(),
  };

  // A gift whose answer is lost: the server gives it, the page hears nothing, and sending again
  // replays it under the same key.
  const giftKeys = [];
  let cutOnce = false;
  await page.route('**/graphql', async (route) => {
    const body = route.request().postDataJSON();
    if (!body || body.operationName !== 'PortalGiftCredits') return route.fallback();
    giftKeys.push(body.variables.input.idempotencyKey);
    if (!cutOnce) {
      cutOnce = true;
      await route.fetch();
      return route.abort('connectionreset');
    }
    return route.fallback();
  });
  await page.fill('#gift-to', RECIPIENT);
  await page.fill('#gift-amount', '25');
  await page.fill('#gift-note', 'Happy birthday <b>Bob</b>');
  seen.giftLost = await submitAndRead(page, 'gift-form', 'gift-outcome');
  seen.giftRetried = await submitAndRead(page, 'gift-form', 'gift-outcome');
  seen.giftFormCleared = (await page.inputValue('#gift-amount')) === '';
  step('gift-sent');
  await page.fill('#gift-to', 'nobody-here');
  await page.fill('#gift-amount', '5');
  seen.giftNotFound = await submitAndRead(page, 'gift-form', 'gift-outcome');
  seen.giftKeys = giftKeys;
  await page.unroute('**/graphql');

  // The page as it looks with its state, for the docs; then axe-core and a phone.
  await page.fill('#gift-to', '');
  await page.fill('#gift-amount', '');
  await openSettings(page);
  if (PORTAL_SCREENSHOTS) await page.screenshot({ path: join(PORTAL_SCREENSHOTS, 'portal-settings.png'), fullPage: true });
  seen.stray = await page.evaluate(() => ['null', 'undefined', 'NaN', '[object'].filter((word) => document.getElementById('page').textContent.includes(word)));
  seen.axe.filled = await axe(page);
  await page.setViewportSize({ width: 390, height: 844 });
  seen.phone = await page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth }));
  seen.axe.phone = await axe(page);
  await browser.close();
  // The lost answer is the one failed load the page may log.
  const expected = problems.filter((p) => /ERR_CONNECTION_RESET|ERR_FAILED/.test(p));
  result({ ...seen, expectedProblems: expected.length, problems: problems.filter((p) => !expected.includes(p)), foreign: foreign() });
});
