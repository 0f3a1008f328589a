// The Buy credits page: packages and a custom amount (its price worked out exactly before
// paying, as the server prices it), the hand-off to payment by the program's checkout mode
// (EXTERNAL: the checkout URL; SIMULATED: a clearly labelled fake payment, development only;
// NONE: the product's app takes payment), and the purchase history with refunds inside the
// program's window. The server decides every refusal; its message is shown.

import { clear, compareDecimal, formatCredits, formatDateTime, formatMoney, h, parseDecimal, priceMinor } from '../dom.js';

const STATUS = { PAID: 'Paid', PENDING: 'Pending payment', REFUNDED: 'Refunded', CANCELLED: 'Cancelled', FAILED: 'Payment failed', EXPIRED: 'Expired unpaid' };

function paymentNote(checkout) {
  if (checkout === 'EXTERNAL') return 'You will be taken to the payment page to pay.';
  if (checkout === 'SIMULATED') return 'This is a development server: payments are simulated and no money moves.';
  return 'Payment happens in the app: your purchase waits there for payment.';
}

export async function render(root, app) {
  const data = await app.gql('PortalBuy');
  const { program, creditPackages } = data;
  const checkout = app.program.checkout || 'NONE';
  const historySlot = h('div');
  const pendingSlot = h('div', { 'aria-live': 'polite' });

  const afterPurchase = async (purchase) => {
    if (checkout === 'EXTERNAL' && purchase.checkoutUrl) {
      app.notify('Taking you to the payment page...', 'info');
      location.assign(purchase.checkoutUrl);
      return;
    }
    app.notify(`Purchase of ${formatCredits(purchase.credits)} credits created: waiting for payment.`, 'success');
    clear(pendingSlot).append(pendingCard(purchase));
    await drawHistory();
  };

  const buy = async (input, button) => {
    button.disabled = true;
    try {
      const result = await app.gql('PortalPurchaseCredits', { input: { accountId: app.accountId, idempotencyKey: app.idempotencyKey(), ...input } });
      await afterPurchase(result.purchaseCredits);
    } catch (error) {
      app.notify(error.message, 'error');
      clear(pendingSlot).append(h('p', { class: 'outcome outcome-error', 'data-testid': 'buy-error' }, error.message));
    } finally {
      button.disabled = false;
    }
  };

  function pendingCard(purchase) {
    const card = h('section', { class: 'card pending', 'data-testid': 'pending' }, h('h2', {}, 'Waiting for payment'), h('p', {}, `${formatCredits(purchase.credits)} credits for ${formatMoney(purchase.amount.amountMinor, purchase.amount.currency)}.`));
    if (checkout === 'SIMULATED') {
      const pay = h('button', { type: 'button', class: 'button button-simulated', 'data-testid': 'simulate' }, 'Simulated payment (development only)');
      const outcome = h('p', { class: 'outcome' });
      pay.addEventListener('click', async () => {
        pay.disabled = true;
        try {
          const paid = await app.gql('PortalSimulatePayment', { purchaseId: purchase.id });
          const message = `Paid (simulated): ${formatCredits(paid.simulatePayment.credits)} credits added.`;
          clear(card).append(h('h2', {}, 'Payment received'), h('p', { class: 'outcome outcome-ok' }, message));
          app.notify(message, 'success');
          await drawHistory();
        } catch (error) {
          outcome.textContent = error.message;
          outcome.className = 'outcome outcome-error';
          app.notify(error.message, 'error');
          pay.disabled = false;
        }
      });
      card.append(h('p', { class: 'muted' }, 'No money moves: this server runs in development mode.'), pay, outcome);
    } else if (checkout === 'EXTERNAL' && purchase.checkoutUrl) {
      card.append(h('p', {}, h('a', { href: purchase.checkoutUrl, rel: 'noreferrer' }, 'Go to the payment page')));
    } else {
      card.append(h('p', {}, 'Pay for it in the app; the credits arrive here as soon as it is paid.'));
    }
    return card;
  }

  // Packages.
  const packages = h('ul', { class: 'packages' });
  for (const pkg of creditPackages) {
    const button = h('button', { type: 'button', class: 'button', 'data-package': pkg.code }, `Buy for ${formatMoney(pkg.price.amountMinor, pkg.price.currency)}`);
    button.addEventListener('click', () => buy({ package: pkg.code }, button));
    packages.append(h('li', { class: 'package' }, h('span', { class: 'package-name' }, pkg.name), pkg.name === `${formatCredits(pkg.credits)} credits` ? null : h('span', { class: 'package-credits' }, `${formatCredits(pkg.credits)} credits`), button));
  }

  // A custom amount, priced as the user types.
  const amount = h('input', { id: 'custom-credits', name: 'credits', type: 'text', inputmode: 'decimal', autocomplete: 'off', required: true, 'aria-describedby': 'custom-help custom-price' });
  const price = h('p', { id: 'custom-price', class: 'price', 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', class: 'button' }, 'Buy');
  const minimum = program.minimumPurchase;
  const check = () => {
    const text = amount.value.trim();
    const parsed = parseDecimal(text);
    if (text === '') return { ok: false, message: '' };
    if (!parsed || parsed.units <= 0n || text.startsWith('-')) return { ok: false, message: 'Enter a number of credits, such as 250.' };
    if (compareDecimal(text, minimum) < 0) return { ok: false, message: `The minimum is ${formatCredits(minimum)} credits.` };
    const minor = priceMinor(text, program.creditPriceMinor);
    return { ok: true, message: `Price: ${formatMoney(minor, program.currency)}` };
  };
  amount.addEventListener('input', () => {
    const { message } = check();
    price.textContent = message;
  });
  const custom = h(
    'form',
    { class: 'custom', 'data-testid': 'custom' },
    h('label', { for: 'custom-credits' }, 'Number of credits'),
    h('p', { id: 'custom-help', class: 'muted' }, `At least ${formatCredits(minimum)} credits, at ${formatMoney(priceMinor('1', program.creditPriceMinor) ?? 0, program.currency)} per credit`, compareDecimal(program.creditPriceMinor, '1') !== 0 && !/^\d+$/.test(program.creditPriceMinor) ? ' (rounded)' : '', '.'),
    h('div', { class: 'field-row' }, amount, submit),
    price,
  );
  custom.addEventListener('submit', (event) => {
    event.preventDefault();
    const verdict = check();
    price.textContent = verdict.message;
    if (verdict.ok) buy({ credits: amount.value.trim() }, submit);
  });

  async function drawHistory(loaded = null) {
    const fresh = loaded || (await app.gql('PortalBuy'));
    const nodes = fresh.me.purchases.nodes;
    const list = h('ul', { class: 'purchases' });
    for (const purchase of nodes) {
      const status = h('span', { class: ['status', `status-${purchase.status.toLowerCase()}`] }, STATUS[purchase.status] || purchase.status);
      const item = h(
        'li',
        { class: 'purchase', dataset: { status: purchase.status } },
        h('span', { class: 'purchase-what' }, purchase.package || `${formatCredits(purchase.credits)} credits`),
        h('span', { class: 'purchase-when' }, formatDateTime(purchase.paidAt || purchase.createdAt)),
        h('span', { class: 'purchase-amount' }, formatMoney(purchase.amount.amountMinor, purchase.amount.currency)),
        status,
        purchase.status === 'REFUNDED' && purchase.refundedAmount ? h('span', { class: 'muted' }, `${formatMoney(purchase.refundedAmount.amountMinor, purchase.refundedAmount.currency)} refunded ${formatDateTime(purchase.refundedAt)}`) : null,
      );
      if (purchase.status === 'PAID' && app.program.refundWindow) {
        const refund = h('button', { type: 'button', class: 'button button-quiet', 'data-refund': purchase.id }, 'Refund');
        const outcome = h('span', { class: 'outcome', 'aria-live': 'polite' });
        refund.addEventListener('click', async () => {
          refund.disabled = true;
          try {
            const result = await app.gql('PortalRefundPurchase', { input: { purchaseId: purchase.id, idempotencyKey: app.idempotencyKey() } });
            app.notify(`Refunded ${formatMoney(result.refundPurchase.refunded.amountMinor, result.refundPurchase.refunded.currency)}.`, 'success');
            await drawHistory();
          } catch (error) {
            outcome.textContent = error.message;
            outcome.className = 'outcome outcome-error';
            app.notify(error.message, 'error');
            refund.disabled = false;
          }
        });
        item.append(refund, outcome);
      } else if (purchase.status === 'PENDING' && checkout === 'SIMULATED') {
        const pay = h('button', { type: 'button', class: 'button button-quiet', 'data-pay': purchase.id }, 'Pay (simulated)');
        pay.addEventListener('click', () => clear(pendingSlot).append(pendingCard(purchase)));
        item.append(pay);
      }
      list.append(item);
    }
    if (nodes.length === 0) list.append(h('li', { class: 'muted' }, 'No purchases yet.'));
    clear(historySlot).append(
      h('section', { class: 'card', 'aria-labelledby': 'purchases-title' }, h('h2', { id: 'purchases-title' }, 'Purchase history'), app.program.refundWindow ? h('p', { class: 'muted' }, `Purchases can be refunded within ${app.program.refundWindow}.`) : null, list),
    );
  }

  root.append(
    h('h1', {}, 'Buy credits'),
    h('p', { class: 'note', 'data-testid': 'checkout-note' }, paymentNote(checkout)),
    h('div', { class: 'grid' }, h('section', { class: 'card', 'aria-labelledby': 'packages-title' }, h('h2', { id: 'packages-title' }, 'Packages'), packages), h('section', { class: 'card', 'aria-labelledby': 'custom-title' }, h('h2', { id: 'custom-title' }, 'Another amount'), custom)),
    pendingSlot,
    historySlot,
  );
  await drawHistory(data);
}
