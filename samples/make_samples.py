"""Regenerate samples/ from the sandbox's demo seed (`importer demo` imports them).

    python samples/make_samples.py

Every pairing in them exists in a sandbox started with the demo seed, and no pairing appears
twice across the files, so `importer demo` creates every row and exits 0. Each file shows the
kind of export finance teams hand over:

- wallets-clean.csv    UTF-8, commas, canonical headers; customers by id or by e-mail.
- wallets-messy.csv    Excel "ANSI" export: Windows-1252, semicolons, alias headers
                       ("Customer E-mail", "Card type"…), human type names ("Stripe payment"),
                       upper-case e-mails, stray spaces, a blank line, an accented reference.
- wallets.xlsx         two data sheets (payment sources, and gateway tokens) plus a notes
                       sheet without the required columns, which is skipped.
"""

from __future__ import annotations

import csv
from pathlib import Path

import xlsxwriter

from importer.sandbox.seed import generate
from importer.sandbox.settings import DEMO_CUSTOMERS, DEMO_SEED

HERE = Path(__file__).resolve().parent
HUMAN_TYPE = {
    "stripe_payments": "Stripe payment",
    "adyen_payments": "ADYEN_PAYMENT",
    "braintree_payments": "Braintree Payments",
    "checkout_com_payments": "checkout-com-payments",
    "external_payments": "External payment",
    "klarna_payments": "Klarna payment",
    "paypal_payments": "PayPal payment",
    "satispay_payments": "Satispay payments",
    "wire_transfers": "Wire transfer",
    "axerve_payments": "Axerve payment",
}


def main() -> None:
    data = generate(DEMO_SEED, DEMO_CUSTOMERS)
    customers = {c.id: c for c in data.customers}
    methods = {m.payment_source_type: m.id for m in data.payment_methods}
    sources = data.sources
    clean, messy, sheet_cards, sheet_tokens = sources[0:12], sources[12:24], sources[24:32], sources[32:40]

    with open(HERE / "wallets-clean.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["customer_id", "customer_email", "payment_source_type", "payment_source_id", "reference"])
        for i, s in enumerate(clean):
            c = customers[s.customer_id]
            w.writerow(
                [c.id if i % 2 == 0 else "", c.email if i % 2 else "", s.type, s.id, f"WAL-{1000 + i}"]
            )

    with open(HERE / "wallets-messy.csv", "w", newline="", encoding="cp1252") as fh:
        w = csv.writer(fh, delimiter=";")
        w.writerow(["Customer E-mail", "Payment type", "Payment Source ID", "Référence", "Notes"])
        for i, s in enumerate(messy):
            c = customers[s.customer_id]
            email = c.email.upper() if i % 3 == 0 else f" {c.email} "
            w.writerow([email, HUMAN_TYPE[s.type], s.id, f"Réf-{2000 + i}", "migré depuis l'ancien PSP"])
            if i == 5:
                w.writerow([])  # a blank line in the middle, as exports often have

    wb = xlsxwriter.Workbook(str(HERE / "wallets.xlsx"))
    cards = wb.add_worksheet("Cards")
    cards.write_row(0, 0, ["Customer ID", "Payment Source Type", "Payment Source ID", "Reference"])
    for r, s in enumerate(sheet_cards, start=1):
        cards.write_row(r, 0, [s.customer_id, s.type, s.id])
        cards.write_number(r, 3, 4240 + r)  # a reference Excel stored as a number: read as "4241", not 4241.0
    tokens = wb.add_worksheet("Gateway tokens")
    tokens.write_row(0, 0, ["Customer ID", "Payment Method ID", "Customer Token", "PSP token"])
    for r, s in enumerate(sheet_tokens, start=1):
        tokens.write_row(
            r, 0, [s.customer_id, methods[s.type], customers[s.customer_id].customer_token, s.token]
        )
    notes = wb.add_worksheet("Notes")
    notes.write(0, 0, "Exported from the finance ledger; the Notes sheet has no pairings and is skipped.")
    wb.close()


if __name__ == "__main__":
    main()
