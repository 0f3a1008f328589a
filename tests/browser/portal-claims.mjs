// The portal's overview on a program's own features, in Chromium with the network cut off but
// for the server: what the claims, benefits, expiring-credits and low-credit parts show, and,
// when the page offers it, claiming today's lucky credits.
//
// Inputs: argv[2] the server's base URL; URL the portal link; CLAIM_LUCKY "1" to claim.
// Prints RESULT with the texts seen, axe-core's serious/critical violations, and any foreign
// request or page error.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { openPage, result, run, WAIT_MS } from './lib.mjs';

const base = process.argv[2];
const { URL: PORTAL_URL, CLAIM_LUCKY } = process.env;
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

const texts = (page, selector) => page.locator(selector).allTextContents();

run(async () => {
  const { browser, page, problems, foreign } = await openPage(base);
  await page.goto(PORTAL_URL, { waitUntil: 'load' });
  await page.waitForSelector('[data-testid="total"]', { timeout: WAIT_MS });
  await page.waitForSelector('#claims-title', { timeout: WAIT_MS });
  await page.waitForSelector('#live[data-state="live"]', { timeout: WAIT_MS });
  const before = {
    nav: await texts(page, 'nav a'),
    lucky: await texts(page, '[data-testid="claim-lucky"]:not([hidden])'),
    luckyButton: await page.locator('[data-testid="claim-lucky-button"]:visible').count(),
    ad: await texts(page, '[data-testid="claim-ad"]'),
    benefits: await texts(page, '[aria-labelledby="benefits-title"] li'),
    low: await texts(page, '[data-testid="low-credits"]'),
    bars: await texts(page, '.bar-name'),
  };
  let claimed = null;
  let after = null;
  if (CLAIM_LUCKY === '1') {
    await page.click('[data-testid="claim-lucky-button"]');
    await page.waitForSelector('[data-testid="claim-lucky"] .outcome-ok', { timeout: WAIT_MS });
    claimed = await page.locator('[data-testid="claim-lucky"] .outcome-ok').textContent();
    await page.waitForSelector('.bar[data-source="LUCKY"]', { timeout: WAIT_MS });
    await page.waitForSelector('[data-testid="claim-lucky-button"]', { state: 'hidden', timeout: WAIT_MS });
    await page.waitForSelector('#expiring-title', { timeout: WAIT_MS });
    after = {
      lucky: await texts(page, '[data-testid="claim-lucky"]'),
      expiring: await texts(page, '#expiring-title ~ ul li'),
    };
  }
  const axe = await page.evaluate(async (source) => {
    (0, eval)(source);
    const outcome = await window.axe.run(document, { resultTypes: ['violations'] });
    return outcome.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  }, AXE);
  await browser.close();
  result({ before, claimed, after, axe, problems, foreign: foreign() });
});
