// What to tell a user when a request fails: a sentence for the refusal's `extensions.code` (the
// stable, documented set in src/graphql/error.rs), then the server's own message, which says
// exactly what (a limit, an amount, an account). A code without a sentence here gets the
// message alone. Field names the server uses ("monthlyCap") can be given the form's words.

const LEADS = {
  BAD_USER_INPUT: 'Please check what you entered',
  INSUFFICIENT_CREDITS: 'Not enough credits',
  DAILY_LIMIT_REACHED: 'The limit for today is reached',
  SPEND_LIMIT_REACHED: 'One of your spend limits stops this',
  NOT_FOUND: 'Not found',
  ACCOUNT_NOT_ACTIVE: 'An account is not active',
  IDEMPOTENCY_CONFLICT: 'This was already sent with other values',
  FEATURE_DISABLED: 'This is not offered here',
  BALANCE_LIMIT_EXCEEDED: 'A balance would pass its maximum',
  FORBIDDEN: 'You may not do this',
  TOO_MANY_ATTEMPTS: 'Too many tries just now; wait a minute and try again',
  LIMIT_EXCEEDED: 'Too many requests just now; wait a minute and try again',
  NETWORK: 'No answer',
  UNAVAILABLE: 'The service is busy',
  TIMEOUT: 'The server took too long',
};

/**
 * Whether a failure leaves the outcome unknown (the request may or may not have been done): a
 * retry must then send the same idempotency key, so it cannot happen twice. A refusal with a
 * code is a definite answer, stored under its key: another try needs a new key.
 */
export function outcomeUnknown(error) {
  const code = (error && error.code) || '';
  return code === 'NETWORK' || code === 'UNAVAILABLE' || code === 'TIMEOUT' || code === 'INTERNAL_SERVER_ERROR' || code.startsWith('HTTP_');
}

function sentence(text) {
  const trimmed = String(text || '').trim();
  if (!trimmed) return '';
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

/**
 * One line for the user: "Please check what you entered: The monthly cap must be ...".
 * `names` maps the API's field names in the message to the form's labels.
 */
export function explain(error, names = {}) {
  let message = (error && error.message) || 'The request failed.';
  for (const [field, label] of Object.entries(names)) message = message.replace(new RegExp(`\\b${field}\\b`, 'g'), label);
  const lead = LEADS[error && error.code];
  return lead ? `${lead}: ${sentence(message)}` : sentence(message);
}
