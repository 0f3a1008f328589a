// The portal's token. It arrives in the URL's fragment (`/portal#token=...`, made by the
// backend's createPortalSession), which no server, proxy or Referer ever sees. The page takes
// it out at once, keeps it in this tab's sessionStorage only (gone when the tab closes, never
// shared with other tabs), and replaces the fragment so the token is not left in the address
// bar or the history.

const KEY = 'credits.portal.token';

/** Takes a token from the fragment if there is one; returns the tab's token, or null. */
export function loadSession() {
  const fragment = location.hash.startsWith('#') ? location.hash.slice(1) : '';
  if (fragment.startsWith('token=') || fragment.includes('&token=')) {
    const token = new URLSearchParams(fragment).get('token');
    if (token) sessionStorage.setItem(KEY, token);
    history.replaceState(null, '', `${location.pathname}${location.search}#/overview`);
  }
  return sessionStorage.getItem(KEY);
}

/** The tab's token, or null. */
export function token() {
  return sessionStorage.getItem(KEY);
}

/** Forgets the token (it expired, or was refused). */
export function forget() {
  sessionStorage.removeItem(KEY);
}
