// The console's shell: signs the operator in (a one-time code from the fragment, or a pasted
// admin token), shows who is signed in with a sign-out, and routes on the fragment
// (#/accounts, #/account/ID, #/audit, #/coupons, #/jobs, #/jobs/NAME, #/webhooks, #/log) to a
// page module. A page exports `render(root, app)`; `app.param` is the route's second part.
// Requests go through the portal's api.js with the console's own document and token.

import { configure, gql, idempotencyKey } from '../../portal/js/api.js';
import { clear, formatDateTime, h } from '../../portal/js/dom.js';
import { forget, keep, takeCode, token } from './session.js';

configure({ documentUrl: new URL('../console.graphql', import.meta.url).href, token });

/** The pages in the navigation's order; `parent` puts a page under another's tab. */
const PAGES = [
  { route: 'accounts', label: 'Accounts', load: () => import('./pages/accounts.js') },
  { route: 'account', label: 'Account', parent: 'accounts', load: () => import('./pages/account.js') },
  { route: 'audit', label: 'Ledger audit', load: () => import('./pages/audit.js') },
  { route: 'coupons', label: 'Coupons', load: () => import('./pages/coupons.js') },
  { route: 'jobs', label: 'Jobs', load: () => import('./pages/jobs.js') },
  { route: 'webhooks', label: 'Webhooks', load: () => import('./pages/webhooks.js') },
  { route: 'log', label: 'Admin log', load: () => import('./pages/log.js') },
];

const page = document.getElementById('page');
const messages = document.getElementById('messages');
const viewerBox = document.getElementById('viewer');
let rendering = 0;
let expiryTimer = null;
let signedIn = false;

/** Says something in the polite live region (screen readers read it out). */
function notify(message, kind = 'info') {
  const item = h('p', { class: ['message', `message-${kind}`] }, message);
  messages.append(item);
  while (messages.childElementCount > 3) messages.firstElementChild.remove();
  setTimeout(() => item.remove(), kind === 'error' ? 15_000 : 6_000);
}

/** The sign-in form, with `message` (why the operator is here) above it when there is one. */
function showSignIn(message) {
  signedIn = false;
  rendering += 1;
  clearTimeout(expiryTimer);
  forget();
  clear(viewerBox);
  clear(document.getElementById('nav'));
  document.title = 'Sign in · Credits console';
  const field = h('input', { id: 'sign-in-token', name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true });
  const form = h(
    'form',
    { class: 'sign-in-form', id: 'sign-in-form', 'aria-labelledby': 'sign-in-title' },
    h('div', { class: 'field' }, h('label', { for: 'sign-in-token' }, 'Admin token'), field),
    h('p', { class: 'muted', id: 'sign-in-help' }, 'Open a link from ', h('code', {}, 'credits console-link'), ', or paste a token from ', h('code', {}, 'credits token --role admin --subject NAME'), '. It is kept in this tab only.'),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'button' }, 'Sign in')),
  );
  field.setAttribute('aria-describedby', 'sign-in-help');
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const value = field.value.trim();
    if (!value) return;
    keep(value);
    enter();
  });
  clear(page).append(
    h(
      'section',
      { class: 'card sign-in' },
      h('h1', { id: 'sign-in-title' }, 'Sign in to the console'),
      message ? h('p', { class: 'error', role: 'alert', id: 'sign-in-message' }, message) : null,
      form,
    ),
  );
  page.dataset.page = 'sign-in';
  field.focus();
}

const ENDED = 'Your session has ended: it expired or the server refused it. Sign in again.';

function isRefusal(error) {
  return error && (error.code === 'UNAUTHENTICATED' || error.code === 'FORBIDDEN');
}

function refusalMessage(error) {
  return error.code === 'FORBIDDEN' ? 'That token is not an operator’s: the console needs an admin token.' : ENDED;
}

function routeOf() {
  const match = /^#\/([a-z]+)(?:\/(.*))?$/.exec(location.hash);
  const found = match && PAGES.find((p) => p.route === match[1]);
  if (!found) return { target: PAGES[0], param: null };
  let param = null;
  if (match[2]) {
    try {
      param = decodeURIComponent(match[2]);
    } catch {
      param = match[2];
    }
  }
  return { target: found, param };
}

function drawNav(current) {
  const nav = clear(document.getElementById('nav'));
  const tab = current.parent || current.route;
  for (const p of PAGES.filter((p) => !p.parent)) {
    nav.append(h('li', {}, h('a', { href: `#/${p.route}`, 'aria-current': p.route === tab ? 'page' : null }, p.label)));
  }
}

async function show(app) {
  if (!signedIn) return;
  const { target, param } = routeOf();
  const ticket = ++rendering;
  drawNav(target);
  document.title = `${target.label}${param ? ` ${param}` : ''} · ${app.program.name} console`;
  clear(page).append(h('p', { class: 'muted' }, 'Loading...'));
  try {
    const module = await target.load();
    if (ticket !== rendering) return;
    const root = h('div', { class: 'page' });
    await module.render(root, { ...app, param });
    if (ticket !== rendering) return;
    clear(page).append(root);
    page.dataset.page = target.route;
  } catch (error) {
    if (ticket !== rendering) return;
    if (isRefusal(error)) {
      showSignIn(refusalMessage(error));
      return;
    }
    clear(page).append(
      h('section', { class: 'card' }, h('h1', {}, 'Something went wrong'), h('p', {}, error.message || String(error)), error.requestId ? h('p', { class: 'muted' }, `Request id: ${error.requestId}`) : null),
    );
  }
}

/** Who is signed in, until when, and the way out. */
function drawViewer(viewer) {
  const who = viewer && viewer.subject ? viewer.subject : 'an operator';
  const signOut = h('button', { type: 'button', class: 'button button-quiet', id: 'sign-out' }, 'Sign out');
  signOut.addEventListener('click', () => showSignIn('You are signed out.'));
  clear(viewerBox).append(
    h(
      'p',
      { class: 'viewer-text' },
      'Signed in as ',
      h('strong', { id: 'viewer-subject' }, who),
      viewer && viewer.expiresAt ? h('span', { class: 'muted' }, ` until ${formatDateTime(viewer.expiresAt)}`) : null,
    ),
    signOut,
  );
  clearTimeout(expiryTimer);
  const left = viewer && viewer.expiresAt ? new Date(viewer.expiresAt).getTime() - Date.now() : NaN;
  // A timer fires at most ~24.8 days ahead; a console session is far shorter.
  if (Number.isFinite(left) && left < 2 ** 31 - 1) expiryTimer = setTimeout(() => showSignIn(ENDED), Math.max(0, left));
}

const app = {
  program: { name: 'Credits' },
  gql: async (operationName, variables) => {
    try {
      return await gql(operationName, variables);
    } catch (error) {
      if (error && error.code === 'UNAUTHENTICATED') showSignIn(ENDED);
      throw error;
    }
  },
  idempotencyKey,
  notify,
};

/** Checks the tab's token with the server, then shows the page the fragment names. */
async function enter() {
  if (!token()) {
    showSignIn(null);
    return;
  }
  clear(page).append(h('p', { class: 'muted' }, 'Signing in...'));
  let start;
  try {
    start = await gql('ConsoleStart');
  } catch (error) {
    if (isRefusal(error)) showSignIn(refusalMessage(error));
    else clear(page).append(h('section', { class: 'card' }, h('h1', {}, 'The console could not load'), h('p', {}, error.message)));
    return;
  }
  if (start.viewer && start.viewer.role !== 'ADMIN') {
    showSignIn(refusalMessage({ code: 'FORBIDDEN' }));
    return;
  }
  app.program = start.program;
  document.getElementById('program-name').textContent = start.program.name;
  drawViewer(start.viewer);
  signedIn = true;
  if (!/^#\/[a-z]/.test(location.hash)) history.replaceState(null, '', `${location.pathname}${location.search}#/accounts`);
  await show(app);
}

/** A one-time code from the fragment becomes the tab's admin token. */
async function exchange(code) {
  clear(page).append(h('p', { class: 'muted' }, 'Signing in...'));
  try {
    const opened = await gql('ConsoleOpenSession', { code });
    keep(opened.openConsoleSession.token);
    return true;
  } catch (error) {
    showSignIn(
      error.code === 'UNAUTHENTICATED'
        ? 'This console link does not work any more: it was used already or it expired. Ask for a new one (credits console-link), or sign in with a token.'
        : error.message,
    );
    return false;
  }
}

async function start() {
  window.addEventListener('hashchange', async () => {
    // A new console link opened in this tab changes only the fragment.
    const code = takeCode();
    if (code) {
      forget();
      if (await exchange(code)) await enter();
      return;
    }
    if (!signedIn) return;
    await show(app);
    page.focus({ preventScroll: true });
  });
  const code = takeCode();
  if (code) {
    forget();
    if (!(await exchange(code))) return;
  }
  await enter();
}

start();
