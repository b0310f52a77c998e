#!/usr/bin/env bash
# Generates extra ticket streams (beyond ../shared/data/streams) for tuning and checking
# detection on rates, incident sizes and labels the shared streams do not cover. Each stream is
# banking77 with Poisson background, injected incidents and an angry-customer decoy, made by
# ../shared/tools/make_stream.py. Usage: scripts/make-streams.sh [OUT_DIR] (default /tmp/streams).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-/tmp/streams}"
SHARED="${SEVLOOP_SHARED:-../shared}"
mkdir -p "$OUT"
make() {
  local name=$1; shift
  python3 "$SHARED/tools/make_stream.py" "$SHARED/data/banking77/tickets.jsonl" "$OUT/$name" "$@" >/dev/null
  echo "$OUT/$name"
}
make c --seed 3 --rate-per-hour 300 --incident card_payment_fee_charged:20:30 \
  --incident balance_not_updated_after_bank_transfer:30:60 --angry card_arrival:15
make d --seed 4 --rate-per-hour 1200 --incident beneficiary_not_allowed:25:30 \
  --incident transaction_charged_twice:40:40 --angry exchange_rate:12
make e --seed 5 --rate-per-hour 60 --incident passcode_forgotten:15:20 --angry lost_or_stolen_card:10
make f --seed 6 --rate-per-hour 2400 --incident wrong_amount_of_cash_received:40:60 \
  --incident contactless_not_working:20:20 --angry card_payment_fee_charged:20
make g --seed 11 --rate-per-hour 900 --incident card_arrival:25:30 \
  --incident cash_withdrawal_charge:30:45 --angry direct_debit_payment_not_recognised:15
make h --seed 12 --rate-per-hour 200 --incident getting_virtual_card:20:20 \
  --incident Refund_not_showing_up:35:60 --angry top_up_failed:12
# Held out: labels, sizes and rates drawn once with a seeded generator, never tuned on (what the
# defaults are checked against after tuning on the streams above). v5's incidents barely rise
# over their labels' own traffic (see docs/MEASUREMENTS.md): even judged by its true label, one
# fires only at its 15th ticket and the other never, at the stated false-alarm rate.
make v1 --seed 21 --rate-per-hour 100 --incident transfer_into_account:20:60 \
  --incident transfer_fee_charged:35:60 --angry age_limit:12
make v2 --seed 22 --rate-per-hour 400 --incident get_physical_card:30:60 \
  --incident verify_my_identity:35:20 --angry atm_support:12
make v3 --seed 23 --rate-per-hour 800 --incident pending_card_payment:25:20 \
  --incident supported_cards_and_currencies:20:20 --angry pending_cash_withdrawal:12
make v4 --seed 24 --rate-per-hour 1500 --incident automatic_top_up:40:30 \
  --incident top_up_by_bank_transfer_charge:35:60 --angry fiat_currency_support:12
make v5 --seed 25 --rate-per-hour 3000 --incident edit_personal_details:25:60 \
  --incident declined_cash_withdrawal:15:60 --angry unable_to_verify_identity:12
make v6 --seed 26 --rate-per-hour 250 --incident exchange_via_app:30:45 \
  --incident card_delivery_estimate:35:60 --angry top_up_by_cash_or_cheque:12
# Held out as well, drawn on 2026-12-06 the same way (a seeded draw of labels, sizes and rates,
# wider rates than v1-v6): looked at for no setting before the merged-history fix was measured.
make w1 --seed 31 --rate-per-hour 40 --incident wrong_exchange_rate_for_cash_withdrawal:30:45 \
  --incident beneficiary_not_allowed:40:30 --angry exchange_via_app:12
make w2 --seed 32 --rate-per-hour 500 --incident age_limit:20:60 \
  --incident top_up_by_cash_or_cheque:40:45 --angry get_physical_card:12
make w3 --seed 33 --rate-per-hour 2000 --incident card_swallowed:30:60 \
  --incident receiving_money:25:30 --angry transfer_fee_charged:12
make w4 --seed 34 --rate-per-hour 5000 --incident cash_withdrawal_not_recognised:25:60 \
  --incident cancel_transfer:30:20 --angry exchange_via_app:12
# Held out as well, drawn on 2026-12-08 (rates log-uniform in 30..6,000 an hour, two incidents of
# 15..40 tickets over 20..60 minutes, a decoy of 10..15; seeded, Python's random with seed
# 2026120801): measured once with the defaults, for no setting.
make x1 --seed 51 --rate-per-hour 58 --incident direct_debit_payment_not_recognised:26:60 \
  --incident card_payment_wrong_exchange_rate:26:45 --angry activate_my_card:13
make x2 --seed 52 --rate-per-hour 45 --incident transfer_not_received_by_recipient:21:30 \
  --incident pending_card_payment:17:30 --angry transaction_charged_twice:14
make x3 --seed 53 --rate-per-hour 1101 --incident verify_top_up:40:30 \
  --incident extra_charge_on_statement:33:45 --angry beneficiary_not_allowed:12
make x4 --seed 54 --rate-per-hour 62 --incident get_physical_card:20:20 \
  --incident wrong_amount_of_cash_received:16:45 --angry card_delivery_estimate:14
make x5 --seed 55 --rate-per-hour 339 --incident lost_or_stolen_card:20:60 \
  --incident top_up_by_bank_transfer_charge:25:30 --angry pending_transfer:14
make x6 --seed 56 --rate-per-hour 677 --incident why_verify_identity:23:45 \
  --incident get_physical_card:36:20 --angry supported_cards_and_currencies:11
