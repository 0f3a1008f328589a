// GraphiQL from the server with no network beyond it: loads the page, runs a query over HTTP and
// a subscription over /graphql/ws (the token set in the Headers tab, as a user would), and waits
// for a balance change that the Rust test makes after "STEP subscribed".
//
// Inputs: argv[2] the server's base URL; TOKEN a user token of account ACCOUNT whose balance is
// BALANCE now and becomes NEXT_BALANCE after the change; SCREENSHOT a path for a PNG.
import { openPage, result, run, step, WAIT_MS } from './lib.mjs';

const base = process.argv[2];
const { TOKEN, ACCOUNT, BALANCE, NEXT_BALANCE, SCREENSHOT } = process.env;

/** Sets one of GraphiQL's CodeMirror editors, found by a CSS selector, as pasting would. */
async function setEditor(page, selector, text) {
  await page.waitForSelector(selector, { timeout: WAIT_MS });
  await page.evaluate(([selector, text]) => document.querySelector(selector).CodeMirror.setValue(text), [selector, text]);
}

/** Waits until the response pane holds JSON for which `test` is true, and returns it. */
async function waitForResponse(page, test, what) {
  const deadline = Date.now() + WAIT_MS;
  let last = '';
  while (Date.now() < deadline) {
    last = await page.evaluate(() => {
      const editor = document.querySelector('.result-window .CodeMirror');
      return editor ? editor.CodeMirror.getValue() : '';
    });
    try {
      const value = JSON.parse(last);
      if (test(value)) return value;
    } catch {
      // Not a whole response yet.
    }
    await page.waitForTimeout(100);
  }
  throw new Error(`GraphiQL did not show ${what}; its response pane holds: ${last}`);
}

/**
 * Sets the query editor to an operation named `name`, and waits until GraphiQL has taken it in
 * (its tab shows the name): it reads the editor after a short delay, and a click before that
 * would send the new document with the previous operation's name.
 */
async function setOperation(page, name, text) {
  await setEditor(page, '.graphiql-query-editor .CodeMirror', text);
  await page.waitForFunction(
    (name) => [...document.querySelectorAll('.graphiql-tab-button')].some((tab) => tab.textContent.trim() === name),
    name,
    { timeout: WAIT_MS },
  );
}

const execute = (page) => page.click('.graphiql-execute-button');

run(async () => {
  const { browser, page, requests, websockets, problems, foreign } = await openPage(base);
  const response = await page.goto(new URL('/graphql', base).href, { waitUntil: 'load' });
  if (response.status() !== 200) throw new Error(`GET /graphql answered ${response.status()}`);
  await page.waitForSelector('.graphiql-container', { timeout: WAIT_MS });
  step('loaded');

  // The token goes in the Headers tab, as the page's own instructions say.
  await page.getByRole('button', { name: 'Headers' }).click();
  await setEditor(page, '.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror', JSON.stringify({ Authorization: `Bearer ${TOKEN}` }));

  // A query over HTTP.
  await setOperation(page, 'Mine', 'query Mine {\n  me {\n    id\n    balance {\n      total\n    }\n  }\n}\n');
  await execute(page);
  const query = await waitForResponse(page, (r) => r.data?.me?.balance?.total === BALANCE, `the balance ${BALANCE}`);
  step('queried');

  // A subscription over the WebSocket: the balance now, then the change the test makes.
  await setOperation(page, 'Watch', 'subscription Watch {\n  balanceChanged {\n    accountId\n    balance {\n      total\n    }\n  }\n}\n');
  await execute(page);
  const first = await waitForResponse(page, (r) => r.data?.balanceChanged?.balance?.total === BALANCE, `the subscription's first balance ${BALANCE}`);
  step('subscribed');
  const next = await waitForResponse(page, (r) => r.data?.balanceChanged?.balance?.total === NEXT_BALANCE, `the pushed balance ${NEXT_BALANCE}`);
  step('pushed');
  if (SCREENSHOT) await page.screenshot({ path: SCREENSHOT });
  // Stops the subscription (the run button turns into a stop button while one runs).
  await execute(page);

  await browser.close();
  result({ account: ACCOUNT, query, first, next, requests, websockets, problems, foreign: foreign() });
});
