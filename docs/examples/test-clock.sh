#!/usr/bin/env bash
# The README's test-clock walk-through: for each preset, a deployment on a test clock takes an
# account through a month end, a renewal and a refund window, printing the balance at each step.
# Run from the repository: `bash docs/examples/test-clock.sh` (it builds and runs the binary in a
# temporary directory, on port 8091, and stops it after).
set -euo pipefail
BIN=${CREDITS_BIN:-$(pwd)/target/debug/credits}
[ -x "$BIN" ] || cargo build -q -p credits
PORT=${PORT:-8091}
URL=http://127.0.0.1:$PORT/graphql

gql() { # token, query, [variables]
  curl -s "$URL" -H "Authorization: Bearer $1" -H 'content-type: application/json' \
    -d "$(jq -nc --arg q "$2" --argjson v "${3:-{\}}" '{query: $q, variables: $v}')"
}
say() { printf '%-58s %s\n' "$1" "$2"; }
balance() { gql "$SERVICE" 'query($a: ID!) { account(id: $a) { balance { total } } }' "{\"a\":\"$1\"}" | jq -r .data.account.balance.total; }
advance() { # to or by, value
  gql "$ADMIN" "mutation(\$v: ${3:-String}) { advanceClock($1: \$v) { now stops ran { job periods items } } }" "{\"v\":\"$2\"}" \
    | jq -r '.data.advanceClock | "\(.now) after \(.stops) stop(s); ran: \([.ran[] | select(.periods != [] or .items > 0) | .job] | join(", "))"'
}
buy() { # account, credits or package field, value -> purchase id
  local id
  id=$(gql "$SERVICE" "mutation(\$a: ID!, \$v: ${4:-CreditAmount}) { purchaseCredits(input: {accountId: \$a, $2: \$v, idempotencyKey: \"buy-$3\"}) { id } }" \
    "{\"a\":\"$1\",\"v\":\"$3\"}" | jq -r .data.purchaseCredits.id)
  gql "$SERVICE" 'mutation($id: ID!) { confirmPurchase(input: {purchaseId: $id, paymentReference: $id}) { status } }' "{\"id\":\"$id\"}" >/dev/null
  echo "$id"
}
refund() { # account, purchase id
  gql "$($BIN token --role user --account "$1")" \
    'mutation($id: ID!) { refundPurchase(input: {purchaseId: $id, idempotencyKey: $id}) { credits } }' "{\"id\":\"$2\"}" \
    | jq -r 'if .errors then .errors[0].extensions.code else "refunded \(.data.refundPurchase.credits) credits" end'
}

run_preset() { # preset, then the steps as a function name
  local dir; dir=$(mktemp -d)
  export CREDITS_DATA_DIR=$dir CREDITS_PROGRAM=$1 CREDITS_CLOCK=test CREDITS_CLOCK_START=2026-01-30T09:00:00Z RUST_LOG=warn
  (cd "$dir" && exec "$BIN" serve --no-workers --bind 127.0.0.1:$PORT) 2>"$dir/serve.log" &
  local pid=$!
  until curl -s "http://127.0.0.1:$PORT/health" >/dev/null; do sleep 0.2; done
  SERVICE=$(cd "$dir" && "$BIN" token --role service); ADMIN=$(cd "$dir" && "$BIN" token --role admin)
  BIN="$BIN" CREDITS_DATA_DIR=$dir
  echo "## $1 (clock starts at $CREDITS_CLOCK_START)"
  "$2"
  kill $pid; wait $pid 2>/dev/null || true
  rm -rf "$dir"; echo
}

arkain() {
  gql "$SERVICE" 'mutation { createAccount(input: {externalId: "ana", plan: "membership"}) { created } }' >/dev/null
  say "ana joins Membership (1,000 credits for January)" "$(balance ana)"
  P1=$(buy ana credits 100); P2=$(buy ana credits 200)
  say "buys 100 (+30 first-purchase bonus), then 200" "$(balance ana)"
  say "advance to 2026-01-31T23:59:59.999999Z" "$(advance to 2026-01-31T23:59:59.999999Z DateTime)"
  say "  January's plan credits still count" "$(balance ana)"
  say "advance by \"end of month\"" "$(advance by 'end of month')"
  say "  January's 1,000 ended, February's 1,000 granted" "$(balance ana)"
  say "advance to 2026-02-06T08:59:59Z (day 7 of the purchases)" "$(advance to 2026-02-06T08:59:59Z DateTime)"
  say "  ana refunds the first purchase" "$(refund ana "$P1")"
  say "  balance" "$(balance ana)"
  say "advance by \"1 day\" (day 8)" "$(advance by '1 day')"
  say "  ana asks to refund the second" "$(refund ana "$P2")"
  say "  balance" "$(balance ana)"
}

carat() {
  gql "$SERVICE" 'mutation { createAccount(input: {externalId: "cam", plan: "plus"}) { created } }' >/dev/null
  say "cam subscribes to Plus (10,000 credits, a month from today)" "$(balance cam)"
  P1=$(buy cam package topup-5000 String)
  say "tops up 5,000 (valid a month)" "$(balance cam)"
  say "advance by \"end of month\"" "$(advance by 'end of month')"
  say "  nothing ends with the calendar month" "$(balance cam)"
  say "advance to 2026-02-06T09:00:00Z (day 8 of the top-up)" "$(advance to 2026-02-06T09:00:00Z DateTime)"
  say "  cam asks to refund the untouched top-up" "$(refund cam "$P1")"
  say "advance to 2026-02-28T08:59:59.999999Z" "$(advance to 2026-02-28T08:59:59.999999Z DateTime)"
  say "  the plan's month and the top-up's still run" "$(balance cam)"
  say "advance to 2026-02-28T09:00:00Z: both months end" "$(advance to 2026-02-28T09:00:00Z DateTime)"
  say "  renewed at that instant: 10,000 until 2026-03-30T09:00Z" "$(balance cam)"
}

archipelag() {
  gql "$SERVICE" 'mutation { createAccount(input: {externalId: "ari"}) { created } }' >/dev/null
  say "ari signs up (sign-up grant)" "$(balance ari)"
  P1=$(buy ari package starter String)
  say "buys the starter package" "$(balance ari)"
  say "advance by \"end of month\"" "$(advance by 'end of month')"
  say "  credits never expire" "$(balance ari)"
  say "advance by \"3 months\"" "$(advance by '3 months')"
  say "  still" "$(balance ari)"
  say "  ari asks for a refund (non-refundable)" "$(refund ari "$P1")"
}

for preset in arkain carat archipelag; do run_preset "$preset" "$preset"; done
