"""Contexts (templates) for planted values and decoys, and filler prose.

Written from how people write in tickets, chats, forms, logs and mail in several languages, not
from any detector's word list. ``{v}`` stands for the value. Each list is split in two halves
by :func:`pii_corpus.split_half`: the dev split sees one, the held-out split the other.
"""
from __future__ import annotations

from pii_corpus import split_half

_CONTEXTS: dict[str, list[str]] = {
    "email": ["{v}", "Email: {v}", "send it to {v} please", "mailto:{v}", "<{v}>", "Reply-To: {v}",
              "«{v}»", "“{v}”", "E-Mail-Adresse: {v}", "courriel : {v}", "correo: {v}", "indirizzo {v}",
              "my address is {v}.", "user={v}&lang=en", '"email":"{v}"', "[{v}]",
              "メール：{v}", "邮箱：{v}", "почта {v}", "Kontakt:{v}", "From: Jane <{v}>", "({v})", "write {v}"],
    "phone": ["Tel.{v}", "Tel: {v}", "phone {v}", "call me on {v} after 5", "Mobil: {v}", "Handy {v}",
              "tél. {v}", "móvil: {v}", "cell: {v}", "WhatsApp {v}", "Fax:{v}", "ring {v}",
              "Telefonnummer {v}", "numéro : {v}", "電話：{v}", "тел. {v}", "phone={v}", "contact {v} (evenings)",
              "reach us at {v}", "(call {v})", "hotline {v}", "cellulare {v}", "T {v}", "Ph:{v}"],
    "phone_bare": ["{v}", "{v}", "or {v}", "({v})", "- {v}", "{v}, ext. desk"],
    "credit_card": ["card {v}", "CC#{v}", "CC# {v}", "card number: {v}", "my account number is {v}",
                    "acct {v}", "ID {v}", "paid with {v}", "Karte {v}", "carte {v}", "tarjeta: {v}",
                    "Kreditkarte: {v}", "{v}", "{v} exp 04/29", "PAN={v}", "member {v}", "policy {v}",
                    "order {v}", "case {v}", '"pan": "{v}"', "card ending in... no, full: {v}", "#{v}",
                    "number {v}", "Visa {v}"],
    "iban": ["IBAN {v}", "IBAN: {v}", "IBAN:{v}", "to {v} please", "Konto {v}", "compte {v}", "cuenta {v}",
             "{v}", "account {v}", "acct#{v}", "rekening {v}", "beneficiary {v} (BIC on file)",
             "iban={v}", "conto {v}", "Bankverbindung: {v}", "refund to {v}"],
    "ipv4": ["{v}", "from {v}", "IP {v}", "ip={v}", "{v}:8443", "http://{v}/status", "ssh root@{v}",
             "host {v} down", "X-Forwarded-For: {v}", "src {v}", "client={v};", "{v}/24", "ping {v}",
             "Server-IP:{v}", "[{v}]", "Adresse {v}"],
    "ipv6": ["{v}", "from {v}", "IPv6 {v}", "[{v}]:443", "http://[{v}]/", "inet6 {v}", "addr={v}",
             "peer {v} timed out", "{v} (gateway)", "route via {v}", "client={v};", "Adresse {v}"],
    "us_ssn": ["SSN {v}", "SSN: {v}", "ssn={v}", "SSN#{v}", "Social Security Number: {v}",
               "social security no. {v}", "my SSN is {v}", "SS# {v}", "S.S.N. {v}", "SSN:{v}"],
    "us_ssn_bare": ["{v}", "SSN {v}", "ssn: {v}", "taxpayer {v}", "ID {v}", "(ssn {v})", "{v} on file"],
    "secret": ["{v}", "key={v}", "token: {v}", "export TOKEN={v}", "Authorization: Bearer {v}",
               "password {v}", "api_key = \"{v}\"", "secret:{v}", "creds {v} (rotate!)", "`{v}`"],
    # decoy categories
    "order": ["order {v}", "Order ID: {v}", "Bestellnummer {v}", "n° de commande {v}", "pedido {v}",
              "ordine {v}", "bestelling {v}", "注文番号 {v}", "заказ {v}", "ref {v}", "{v}", "#{v}",
              "ticket {v}", "case {v}", "Auftrag {v}", "dossier {v}", "invoice {v}", "Rechnung {v}"],
    "version": ["version {v}", "v{v}", "build {v}", "release {v}", "{v}", "firmware {v}", "Version {v}",
                "upgraded to {v}", "pip install pkg=={v}", "app {v}"],
    "datetime": ["{v}", "on {v}", "at {v}", "[{v}] ERROR", "am {v}", "le {v}", "el {v}", "date={v}",
                 "since {v}", "due {v}"],
    "money": ["{v}", "total {v}", "Betrag {v}", "montant {v}", "importe {v}", "refund of {v}", "costs {v}",
              "Preis: {v}"],
    "hash": ["{v}", "commit {v}", "sha {v}", "checksum={v}", "digest {v}", "id {v}", "etag \"{v}\""],
    "number": ["{v}", "about {v}", "count {v}", "n={v}", "Seite {v}", "page {v}", "value {v}", "{v} items"],
    "code": ["{v}", "use {v}", "`{v}`", "see {v}", "type {v} here", "({v})"],
    "luhn_fail": ["{v}", "ref {v}", "card {v}", "number {v}", "Referenz {v}", "référence {v}", "serial {v}",
                  "account {v}"],
}


def contexts(kind: str, split: str) -> list[str]:
    return split_half(_CONTEXTS[kind], split)


WRAPPERS = [("", ""), ("", ""), ("", ""), ("(", ")"), ('"', '"'), ("'", "'"), ("[", "]"), ("", ","), ("", "."),
            ("", ";"), ("", ":"), ("«", "»"), ("“", "”"), ("`", "`"), ("*", "*"), ("", ".\n"), ("-> ", ""),
            ("\n", "\n"), ("", "!"), ("", "?"), ("「", "」")]
SEPARATORS = [" ", " ", " ", "\n", "\n\n", " | ", "\t", " - ", ", "]
