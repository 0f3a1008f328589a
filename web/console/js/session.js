// The console's admin token. It comes from a one-time code in the URL's fragment
// (`/console#code=...`, printed by `credits console-link`; no server, proxy or Referer sees a
// fragment), which the page takes out of the address bar at once and exchanges for a
// short-lived token (`openConsoleSession`), or from the sign-in form. The token is kept in this
// tab's sessionStorage only: gone when the tab closes, never shared with other tabs, never in
// localStorage or a cookie.

const KEY = 'credits.console.token';

/**
 * Takes a one-time code from the fragment if there is one, replacing the fragment at once (so
 * the code is not left in the address bar or the history); returns the code, or null.
 */
export function takeCode() {
  const fragment = location.hash.startsWith('#') ? location.hash.slice(1) : '';
  if (!(fragment.startsWith('code=') || fragment.includes('&code='))) return null;
  const code = new URLSearchParams(fragment).get('code');
  history.replaceState(null, '', `${location.pathname}${location.search}#/accounts`);
  return code || null;
}

/** The tab's admin token, or null. */
export function token() {
  return sessionStorage.getItem(KEY);
}

/** Keeps `value` as the tab's admin token. */
export function keep(value) {
  sessionStorage.setItem(KEY, value);
}

/** Forgets the token (signed out, expired, or refused). */
export function forget() {
  sessionStorage.removeItem(KEY);
}
