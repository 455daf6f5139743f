"""The German translation is complete and the .pot is current with the code.

When a test here fails after you added or changed a user-facing string, run
`scripts/update_translations` and translate what it lists in azure_ad_contacts/i18n/de.po."""

import re

import polib

from odoo.tests import TransactionCase

from scripts import i18n

from .common import AddonTest

PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|%[sd]")
HOW_TO_FIX = "run scripts/update_translations, then translate what it lists in azure_ad_contacts/i18n/de.po"


class TestTranslations(AddonTest, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pot = polib.pofile(str(i18n.POT))
        cls.de = polib.pofile(str(i18n.I18N / "de.po"))

    def test_pot_is_current_with_the_code(self):
        exported = polib.pofile(i18n.export_pot(self.env.cr))
        current = {i18n.entry_key(entry) for entry in exported}
        committed = {i18n.entry_key(entry) for entry in self.pot}
        self.assertEqual(
            (sorted(current - committed, key=str), sorted(committed - current, key=str)),
            ([], []),
            f"(terms missing from the .pot, terms gone from the code): {HOW_TO_FIX}",
        )

    def test_german_has_every_term_translated(self):
        german = {i18n.entry_key(entry): entry for entry in self.de if not entry.obsolete}
        missing = [entry.msgid for entry in self.pot if i18n.entry_key(entry) not in german]
        self.assertEqual(missing, [], f"terms of the .pot missing from de.po: {HOW_TO_FIX}")
        empty = [entry.msgid for entry in german.values() if not entry.msgstr.strip()]
        self.assertEqual(empty, [], f"untranslated terms in de.po: {HOW_TO_FIX}")
        fuzzy = [entry.msgid for entry in german.values() if "fuzzy" in entry.flags]
        self.assertEqual(fuzzy, [], "fuzzy translations in de.po: check and unmark them")

    def test_german_keeps_every_placeholder(self):
        broken = [
            entry.msgid
            for entry in self.de
            if sorted(PLACEHOLDER.findall(entry.msgstr)) != sorted(PLACEHOLDER.findall(entry.msgid))
        ]
        self.assertEqual(broken, [], "translations that lose or add a %(name)s placeholder")

    def test_german_in_the_user_interface(self):
        self.env["res.lang"]._activate_lang("de_DE")
        self.env["ir.module.module"]._load_module_terms(["azure_ad_contacts"], ["de_DE"], overwrite=True)
        env = self.env(context={"lang": "de_DE"})
        form = env["azure.ad.integration"].get_views([(False, "form")])["views"]["form"]["arch"]
        for german in ("Erneut verbinden", "Trennen", "Welche Benutzer", "Letzter Lauf"):
            self.assertIn(german, form)
        wizard = env["azure.ad.connect.wizard"].get_views([(False, "form")])["views"]["form"]["arch"]
        self.assertIn("Anmeldedaten werden nie gespeichert", wizard)
        counts = {"created": 3, "updated": 1, "unchanged": 0, "skipped": 2}
        self.assertEqual(
            env["azure.ad.sync.log"]._result_message(counts),
            "Azure AD-Synchronisierung: 3 erstellt, 1 aktualisiert, 0 unverändert, 2 übersprungen.",
        )
