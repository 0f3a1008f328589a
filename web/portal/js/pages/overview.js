// The Overview page: the balance and a bar per kind of credit (live through balanceChanged),
// credits expiring soon, the low-credit banner, benefits in use, the claims the program offers
// (check-in, lucky credits, ad reward, coupon) and the last few entries of the history. Every
// refusal shows the server's own message; every text the server sends is shown as text.

import { clear, compareDecimal, formatCredits, formatDate, formatDateTime, h, parseDuration, words } from '../dom.js';

/** Readable names of the sources of credits (the schema's LotSource). */
const SOURCES = {
  ADJUSTMENT: 'Adjustments',
  AD_REWARD: 'Ad rewards',
  CHECK_IN: 'Check-in rewards',
  COUPON: 'Coupons',
  DAILY_FREE: 'Daily free credits',
  EVENT: 'Event credits',
  FEEDBACK: 'Feedback rewards',
  FIRST_PURCHASE_BONUS: 'First purchase bonus',
  GIFT: 'Gifts received',
  LUCKY: 'Lucky credits',
  MONTHLY_PLAN: 'Monthly plan credits',
  PROVIDER_EARNINGS: 'Provider earnings',
  PURCHASE: 'Purchased credits',
  REFERRAL: 'Referral bonus',
  ROLLOVER: 'Rolled-over plan credits',
  SIGN_UP: 'Sign-up bonus',
  SUBSCRIPTION: 'Subscription credits',
};

const CLASSES = { FREE: 'free', PAID: 'paid', PROMOTIONAL: 'promotional' };

const KINDS = {
  GRANT: 'Added',
  SPEND: 'Spent',
  EXPIRE: 'Expired',
  REFUND: 'Refunded',
  REVOKE: 'Taken back',
  HOLD: 'Held',
  RELEASE: 'Released',
  TRANSFER: 'Transfer',
  ROLLOVER: 'Rolled over',
  ADJUST: 'Adjusted',
  VOID: 'Voided',
  EXPIRY_CHANGE: 'Expiry changed',
  GIFT_SENT: 'Gift sent',
  GIFT_RECEIVED: 'Gift received',
};

function credits(amount) {
  return `${formatCredits(amount)} credits`;
}

/** The share of `part` in `whole` as a CSS width, for the bars only (never shown as a number). */
function share(part, whole) {
  const p = Number(part);
  const w = Number(whole);
  if (!(w > 0) || !(p > 0)) return '0%';
  return `${Math.max(1, Math.min(100, (p / w) * 100)).toFixed(2)}%`;
}

function balanceSection(balance) {
  return h(
    'section',
    { class: 'card balance', 'aria-labelledby': 'balance-title' },
    h('h2', { id: 'balance-title' }, 'Balance'),
    h('p', { class: 'total' }, h('span', { class: 'total-amount', 'data-testid': 'total' }, formatCredits(balance.total)), ' credits'),
    h(
      'dl',
      { class: 'figures' },
      h('div', {}, h('dt', {}, 'Available'), h('dd', { 'data-testid': 'available' }, formatCredits(balance.available))),
      h('div', {}, h('dt', {}, 'Held for work in progress'), h('dd', { 'data-testid': 'held' }, formatCredits(balance.held))),
    ),
    // Credits only some uses may take, and credits granted to start later (not in the total).
    balance.scoped.length > 0
      ? h(
          'ul',
          { class: 'balance-notes', 'data-testid': 'scoped' },
          balance.scoped.map((s) => h('li', {}, `${credits(s.available)} only for ${s.features.join(', ')}`)),
        )
      : null,
    balance.upcoming.length > 0
      ? h(
          'ul',
          { class: 'balance-notes', 'data-testid': 'upcoming' },
          balance.upcoming.map((u) => h('li', {}, `${credits(u.amount)} coming ${formatDateTime(u.effectiveAt)}`)),
        )
      : null,
  );
}

function barsSection(balance) {
  const list = h('ul', { class: 'bars' });
  if (balance.bars.length === 0) list.append(h('li', { class: 'muted' }, 'No credits yet.'));
  for (const bar of balance.bars) {
    const dated = bar.expiries.filter((e) => e.expiresAt);
    const undated = bar.expiries.some((e) => !e.expiresAt);
    const meter = h('div', { class: ['meter', `meter-${CLASSES[bar.class] || 'other'}`] });
    const fill = h('div', { class: 'meter-fill' });
    fill.style.width = share(bar.remaining, balance.total);
    meter.append(fill);
    list.append(
      h(
        'li',
        { class: ['bar', bar.waiting ? 'bar-waiting' : null], dataset: { source: bar.source } },
        h('div', { class: 'bar-head' }, h('span', { class: 'bar-name' }, SOURCES[bar.source] || words(bar.source)), h('span', { class: 'bar-amount' }, credits(bar.remaining))),
        meter,
        h(
          'p',
          { class: 'bar-notes' },
          h('span', { class: 'tag' }, words(CLASSES[bar.class] || bar.class)),
          bar.waiting ? h('span', { class: 'waiting' }, 'Waiting until the rest is used up') : null,
          compareDecimal(bar.held, '0') > 0 ? h('span', {}, `${formatCredits(bar.held)} held`) : null,
          dated.length > 0
            ? h('span', {}, dated.map((e, i) => `${i ? '; ' : ''}${formatCredits(e.remaining)} expire ${formatDate(e.expiresAt)}`))
            : undated
              ? h('span', {}, 'No expiry')
              : null,
        ),
      ),
    );
  }
  return h('section', { class: 'card', 'aria-labelledby': 'bars-title' }, h('h2', { id: 'bars-title' }, 'Your credits'), list);
}

/** Credits that expire within the program's notice window (`program.expiringWithin`). */
function expiringSection(balance, program, now) {
  const window = parseDuration(program.expiringWithin);
  if (window === null) return null;
  const until = new Date(now).getTime() + window;
  const soon = [];
  for (const bar of balance.bars) {
    for (const expiry of bar.expiries) {
      if (expiry.expiresAt && new Date(expiry.expiresAt).getTime() <= until && compareDecimal(expiry.remaining, '0') > 0) {
        soon.push({ source: bar.source, ...expiry });
      }
    }
  }
  if (soon.length === 0) return null;
  soon.sort((a, b) => new Date(a.expiresAt) - new Date(b.expiresAt));
  return h(
    'section',
    { class: 'banner banner-warn', 'aria-labelledby': 'expiring-title' },
    h('h2', { id: 'expiring-title' }, `Expiring within ${program.expiringWithin}`),
    h('ul', {}, soon.map((e) => h('li', {}, `${credits(e.remaining)} (${(SOURCES[e.source] || words(e.source)).toLowerCase()}) expire ${formatDateTime(e.expiresAt)}`))),
  );
}

function lowCreditsBanner(low) {
  if (!low || !low.applies) return null;
  return h(
    'section',
    { class: 'banner banner-low', 'data-testid': 'low-credits' },
    h('h2', {}, 'Your credits are running low'),
    h('p', {}, `${credits(low.balance)} left`, low.threshold ? ` (below ${formatCredits(low.threshold)})` : '', '. ', h('a', { href: '#/buy' }, 'Buy credits')),
    low.reason ? h('p', { class: 'muted' }, low.reason) : null,
  );
}

const BENEFITS = {
  PLAN_CREDITS: (b) => [`Plan credits${b.name ? `: ${b.name}` : ''}`, b.credits ? `${credits(b.credits)} this period` : null, b.endsAt ? `until ${formatDate(b.endsAt)}` : null],
  DAILY_FREE_CREDITS: (b) => ['Daily free credits', b.credits ? `${credits(b.credits)} a day` : null, b.endsAt ? `until ${formatDate(b.endsAt)}` : null],
  LUCKY_CREDITS: (b) => ['Lucky credits', b.credits ? `up to ${credits(b.credits)} a day` : null, b.endsAt ? `promotion ends ${formatDate(b.endsAt)}` : null],
  FIRST_PURCHASE_BONUS: (b) => ['First purchase bonus', b.percent ? `${formatCredits(b.percent)}% extra on your first purchase` : 'extra credits on your first purchase', b.endsAt ? `until ${formatDate(b.endsAt)}` : null],
  REFERRAL_BONUS: (b) => ['Referral bonus', b.credits ? `${credits(b.credits)} on hold` : null, b.endsAt ? `released ${formatDate(b.endsAt)}` : null],
  COUPON: (b) => [`Coupon${b.code ? ` ${b.code}` : ''}`, b.credits ? `${credits(b.credits)} left` : null, b.endsAt ? `expires ${formatDate(b.endsAt)}` : null],
};

function benefitsSection(benefits) {
  if (!Array.isArray(benefits)) return null;
  const list = h('ul', { class: 'plain' });
  for (const benefit of benefits) {
    const describe = BENEFITS[benefit.kind] || ((b) => [words(b.kind), b.credits ? credits(b.credits) : null]);
    const [title, ...details] = describe(benefit);
    list.append(h('li', {}, h('strong', {}, title), details.filter(Boolean).length ? ` · ${details.filter(Boolean).join(' · ')}` : ''));
  }
  if (benefits.length === 0) list.append(h('li', { class: 'muted' }, 'No promotions apply to your account right now.'));
  return h('section', { class: 'card', 'aria-labelledby': 'benefits-title' }, h('h2', { id: 'benefits-title' }, 'Benefits in use'), list);
}

/** A button that runs `action` and shows its outcome (the server's message on a refusal) next
 *  to it; both stay in the page across refreshes, so focus and the message are kept. */
function actionButton(label, action, app, after) {
  const outcome = h('p', { class: 'outcome' });
  const button = h('button', { type: 'button', class: 'button' }, label);
  button.addEventListener('click', async () => {
    button.disabled = true;
    outcome.textContent = '';
    outcome.className = 'outcome';
    try {
      const message = await action();
      outcome.textContent = message;
      outcome.classList.add('outcome-ok');
      app.notify(message, 'success');
      if (after) await after();
    } catch (error) {
      outcome.textContent = error.message;
      outcome.classList.add('outcome-error');
      outcome.dataset.code = error.code || '';
      app.notify(error.message, 'error');
    } finally {
      button.disabled = false;
    }
  });
  return [button, outcome];
}

/**
 * The claims the program offers, built once; `update(me)` rewrites their status from fresh
 * data without replacing buttons or the coupon field (a live update must not clear what the
 * user is typing or move their focus).
 */
function claimsCard(program, app, refresh) {
  const checkStatus = h('p');
  const [checkButton, checkOutcome] = actionButton(
    'Check in',
    async () => {
      const data = await app.gql('PortalCheckIn', { input: { accountId: app.accountId, idempotencyKey: app.idempotencyKey() } });
      return `Checked in: ${credits(data.checkIn.amount)} added.`;
    },
    app,
    refresh,
  );
  checkButton.dataset.testid = 'check-in';
  const checkIn = h('div', { class: 'claim', 'data-testid': 'claim-check-in', hidden: true }, h('h3', {}, 'Daily check-in'), checkStatus, checkButton, checkOutcome);

  const luckyStatus = h('div');
  const [luckyButton, luckyOutcome] = actionButton(
    'Claim lucky credits',
    async () => {
      const data = await app.gql('PortalClaimLuckyCredits', { input: { accountId: app.accountId, idempotencyKey: app.idempotencyKey() } });
      return `Lucky you: ${credits(data.claimLuckyCredits.amount)} added.`;
    },
    app,
    refresh,
  );
  luckyButton.dataset.testid = 'claim-lucky-button';
  const lucky = h('div', { class: 'claim', 'data-testid': 'claim-lucky', hidden: true }, h('h3', {}, "Today's lucky credits"), luckyStatus, luckyButton, luckyOutcome);

  let ad = null;
  if (program.adRewardMode === 'BUTTON') {
    const [button, outcome] = actionButton(
      'Claim reward',
      async () => {
        const data = await app.gql('PortalClaimAdReward', { input: { accountId: app.accountId, idempotencyKey: app.idempotencyKey() } });
        return `Reward claimed: ${credits(data.claimAdReward.amount)} added.`;
      },
      app,
      refresh,
    );
    ad = h('div', { class: 'claim', 'data-testid': 'claim-ad' }, h('h3', {}, 'Reward'), h('p', {}, 'Claim your reward credits.'), button, outcome);
  } else if (program.adRewardMode === 'AD') {
    ad = h('div', { class: 'claim', 'data-testid': 'claim-ad' }, h('h3', {}, 'Ad rewards'), h('p', {}, 'Watch an ad in the app to earn reward credits.'));
  }

  const el = h('section', { class: 'card claims', 'aria-labelledby': 'claims-title' }, h('h2', { id: 'claims-title' }, 'Claims'), checkIn, lucky, ad, couponForm(app, refresh));

  function update(me) {
    const check = me.checkInStatus;
    checkIn.hidden = !check.enabled;
    checkStatus.textContent = `Streak: ${check.streak} ${check.streak === 1 ? 'day' : 'days'}. ${
      check.claimedToday ? `You checked in today. Next check-in from ${formatDateTime(check.nextAvailableAt)}.` : check.credits ? `Check in today for ${credits(check.credits)}.` : 'Check in today.'
    }`;

    const l = me.luckyCredits;
    lucky.hidden = !(l.eligible || l.claimedToday || l.maxCredits || l.promotionEndsAt);
    const claimable = l.eligible && !l.claimedToday;
    lucky.classList.toggle('claim-lucky', claimable);
    luckyButton.hidden = !claimable;
    clear(luckyStatus).append(
      l.claimedToday && l.claimed ? h('p', {}, `You got ${credits(l.claimed)} today.`) : h('p', {}, l.maxCredits ? `A surprise amount of up to ${credits(l.maxCredits)}, once a day.` : 'A surprise amount, once a day.'),
      l.promotionEndsAt ? h('p', { class: 'muted' }, `Promotion ends ${formatDate(l.promotionEndsAt)}.`) : null,
      !l.eligible && l.reason ? h('p', { class: 'muted' }, l.reason) : null,
    );
  }
  return { el, update };
}

function couponForm(app, refresh) {
  const input = h('input', { id: 'coupon-code', name: 'code', type: 'text', autocomplete: 'off', spellcheck: 'false', maxlength: '64', required: true });
  const button = h('button', { type: 'submit', class: 'button' }, 'Redeem');
  const outcome = h('p', { class: 'outcome' });
  const form = h('form', { class: 'claim coupon', 'data-testid': 'coupon' }, h('h3', {}, 'Redeem a coupon'), h('label', { for: 'coupon-code' }, 'Coupon code'), h('div', { class: 'field-row' }, input, button), outcome);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const code = input.value.trim();
    if (!code) return;
    button.disabled = true;
    outcome.textContent = '';
    outcome.className = 'outcome';
    try {
      const data = await app.gql('PortalRedeemCoupon', { input: { accountId: app.accountId, code, idempotencyKey: app.idempotencyKey() } });
      const message = `Coupon redeemed: ${credits(data.redeemCoupon.amount)} added.`;
      outcome.textContent = message;
      outcome.classList.add('outcome-ok');
      app.notify(message, 'success');
      input.value = '';
      await refresh();
    } catch (error) {
      outcome.textContent = error.message;
      outcome.classList.add('outcome-error');
      app.notify(error.message, 'error');
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function activitySection(entries) {
  const list = h('ul', { class: 'activity' });
  for (const entry of entries) {
    const negative = String(entry.amount).startsWith('-');
    list.append(
      h(
        'li',
        { class: 'activity-item' },
        h('span', { class: 'activity-what' }, KINDS[entry.kind] || words(entry.kind), entry.feature ? ` · ${entry.feature}` : ''),
        h('span', { class: ['activity-amount', negative ? 'negative' : 'positive'] }, `${negative ? '' : '+'}${formatCredits(entry.amount)}`),
        h('span', { class: 'activity-when' }, formatDateTime(entry.effectiveAt)),
        entry.reason ? h('span', { class: 'activity-reason' }, entry.reason) : null,
      ),
    );
  }
  if (entries.length === 0) list.append(h('li', { class: 'muted' }, 'Nothing yet.'));
  return h('section', { class: 'card', 'aria-labelledby': 'activity-title' }, h('h2', { id: 'activity-title' }, 'Recent activity'), list, h('p', {}, h('a', { href: '#/history' }, 'All history')));
}

export async function render(root, app) {
  const balanceSlot = h('div', { class: 'slot-balance' });
  const lowSlot = h('div');
  const benefitsSlot = h('div');
  const activitySlot = h('div');
  let refresh = null;
  const claims = claimsCard(app.program, app, () => refresh());
  root.append(h('h1', {}, 'Overview'), lowSlot, balanceSlot, h('div', { class: 'grid' }, claims.el, h('div', { class: 'stack' }, benefitsSlot, activitySlot)));
  let latest = null;
  let now = app.program.now;

  const drawBalance = (balance) => {
    latest = balance;
    clear(balanceSlot).append(h('div', { class: 'grid' }, balanceSection(balance), barsSection(balance)));
    const expiring = expiringSection(balance, app.program, now);
    if (expiring) balanceSlot.prepend(expiring);
  };

  let loading = null;
  refresh = async () => {
    // One load at a time; a change during a load asks for one more after it.
    if (loading) {
      loading.again = true;
      return loading.promise;
    }
    loading = { again: false };
    loading.promise = (async () => {
      do {
        loading.again = false;
        const data = await app.gql('PortalOverview');
        now = data.program.now;
        drawBalance(data.me.balance);
        clear(lowSlot).append(lowCreditsBanner(data.me.lowCredits) || '');
        claims.update(data.me);
        clear(benefitsSlot).append(benefitsSection(data.me.benefits) || '');
        clear(activitySlot).append(activitySection(data.me.history.nodes));
      } while (loading.again);
    })().finally(() => {
      loading = null;
    });
    return loading.promise;
  };

  await refresh();
  let first = true;
  const stop = app.subscribe(
    'PortalBalanceChanged',
    {},
    (data) => {
      const balance = data.balanceChanged.balance;
      // The first event is the balance as it is now; later ones are changes: redraw the bars
      // at once, then the rest (claims, low-credit banner, recent activity) from a fresh load.
      if (first && latest && balance.total === latest.total && balance.held === latest.held) {
        first = false;
        return;
      }
      first = false;
      drawBalance(balance);
      refresh().catch((error) => app.notify(error.message, 'error'));
    },
    (error) => app.notify(`Live updates stopped: ${error.message}`, 'error'),
  );
  return stop;
}
