// The portal's shell: takes the session, loads the program and the account, draws the header
// and navigation, and routes on the fragment (#/overview, #/buy, #/usage, #/history, #/statement, #/market,
// #/settings)
// to a page module. A page exports `render(root, app)` and may return a cleanup function (to
// stop a subscription), called before the next page renders.

import { connection, gql, idempotencyKey, subscribe } from './api.js';
import { clear, h } from './dom.js';
import { forget, loadSession } from './session.js';

/** The pages, in the navigation's order; `shown` says whether a program has the page. */
const PAGES = [
  { route: 'overview', label: 'Overview', load: () => import('./pages/overview.js'), shown: () => true },
  { route: 'buy', label: 'Buy credits', load: () => import('./pages/buy.js'), shown: () => true },
  { route: 'usage', label: 'Usage', load: () => import('./pages/usage.js'), shown: (program) => program.metering === true },
  { route: 'history', label: 'History', load: () => import('./pages/history.js'), shown: () => true },
  { route: 'statement', label: 'Statement', load: () => import('./pages/statement.js'), shown: () => true },
  { route: 'market', label: 'Market', load: () => import('./pages/market.js'), shown: (program) => program.market === true },
  { route: 'settings', label: 'Settings', load: () => import('./pages/settings.js'), shown: () => true },
];

const page = document.getElementById('page');
const messages = document.getElementById('messages');
let cleanup = null;
let rendering = 0;

/** Says something to the user in the polite live region (screen readers read it out). */
function notify(message, kind = 'info') {
  const item = h('p', { class: ['message', `message-${kind}`] }, message);
  messages.append(item);
  while (messages.childElementCount > 3) messages.firstElementChild.remove();
  setTimeout(() => item.remove(), kind === 'error' ? 15_000 : 6_000);
}

/** The page for a link that no longer works: no token, or an expired or refused one. */
function showExpired() {
  if (cleanup) {
    try {
      cleanup();
    } catch {
      // Already stopped.
    }
    cleanup = null;
  }
  forget();
  clear(document.getElementById('nav'));
  clear(page).append(
    h(
      'section',
      { class: 'card expired' },
      h('h1', {}, 'This link has expired'),
      h('p', {}, 'For your security, a portal link works for a short time only. Open the portal again from the app.'),
    ),
  );
}

function isSessionError(error) {
  return error && (error.code === 'UNAUTHENTICATED' || error.code === 'FORBIDDEN');
}

function routeOf(program) {
  const match = /^#\/([a-z]+)/.exec(location.hash);
  const wanted = match ? match[1] : 'overview';
  const found = PAGES.find((p) => p.route === wanted && p.shown(program));
  return found || PAGES[0];
}

function drawNav(program, current) {
  const nav = clear(document.getElementById('nav'));
  for (const p of PAGES.filter((p) => p.shown(program))) {
    nav.append(h('li', {}, h('a', { href: `#/${p.route}`, 'aria-current': p === current ? 'page' : null }, p.label)));
  }
}

async function show(app) {
  const target = routeOf(app.program);
  const ticket = ++rendering;
  if (cleanup) {
    try {
      cleanup();
    } catch (error) {
      console.warn('a page did not clean up', error);
    }
    cleanup = null;
  }
  drawNav(app.program, target);
  document.title = `${target.label} · ${app.program.name}`;
  clear(page).append(h('p', { class: 'muted' }, 'Loading...'));
  try {
    const module = await target.load();
    if (ticket !== rendering) return;
    const root = h('div', { class: 'page' });
    const done = await module.render(root, app);
    if (ticket !== rendering) {
      if (typeof done === 'function') done();
      return;
    }
    clear(page).append(root);
    cleanup = typeof done === 'function' ? done : null;
    page.dataset.page = target.route;
  } catch (error) {
    if (ticket !== rendering) return;
    if (isSessionError(error)) {
      showExpired();
      return;
    }
    clear(page).append(
      h('section', { class: 'card' }, h('h1', {}, 'Something went wrong'), h('p', {}, error.message || String(error)), error.requestId ? h('p', { class: 'muted' }, `Request id: ${error.requestId}`) : null),
    );
  }
}

const LIVE_TEXT = { idle: 'Not connected', connecting: 'Connecting...', live: 'Live', offline: 'Offline, reconnecting...' };

function watchConnection() {
  const live = document.getElementById('live');
  const text = document.getElementById('live-text');
  connection.addEventListener('change', (event) => {
    live.dataset.state = event.detail;
    text.textContent = LIVE_TEXT[event.detail] || event.detail;
  });
}

async function start() {
  watchConnection();
  // A new portal link opened in this tab while the portal is already here changes only the
  // fragment, which does not reload the page: take its token, then start again with it.
  window.addEventListener('hashchange', () => {
    if (/(^#|&)token=/.test(location.hash)) {
      loadSession();
      location.reload();
    }
  });
  if (!loadSession()) {
    showExpired();
    return;
  }
  let start;
  try {
    start = await gql('PortalStart');
  } catch (error) {
    if (isSessionError(error)) {
      showExpired();
    } else {
      clear(page).append(h('section', { class: 'card' }, h('h1', {}, 'The portal could not load'), h('p', {}, error.message)));
    }
    return;
  }
  const { program, me } = start;
  document.getElementById('program-name').textContent = program.name;
  document.getElementById('account').textContent = `Account ${me.id}`;
  const app = {
    program,
    accountId: me.id,
    gql: async (operationName, variables) => {
      try {
        return await gql(operationName, variables);
      } catch (error) {
        if (isSessionError(error) && error.code === 'UNAUTHENTICATED') showExpired();
        throw error;
      }
    },
    subscribe: (operationName, variables, onNext, onError) =>
      subscribe(operationName, variables, onNext, (error) => {
        if (error.code === 'UNAUTHENTICATED') showExpired();
        else if (onError) onError(error);
      }),
    idempotencyKey,
    notify,
  };
  window.addEventListener('hashchange', () => {
    if (location.hash.startsWith('#/')) show(app);
  });
  if (!location.hash.startsWith('#/')) history.replaceState(null, '', `${location.pathname}${location.search}#/overview`);
  await show(app);
  // Focus moves to the new page on navigation (not on the first load), for keyboard and
  // screen reader users.
  window.addEventListener('hashchange', () => page.focus({ preventScroll: true }));
}

start();
