"""Translation files of azure_ad_contacts: export the .pot from a database that has the addon
installed, and merge it into every .po (new terms empty, existing translations kept, gone terms
dropped). Called by scripts/update_translations; tests/test_i18n.py uses its helpers.

Usage: i18n.py -c CONF -d DB
"""

import argparse
import io
import re
import sys
from pathlib import Path

import polib

ADDON = "azure_ad_contacts"
I18N = Path(__file__).resolve().parent.parent / ADDON / "i18n"
POT = I18N / f"{ADDON}.pot"
HEADER = {
    "MIME-Version": "1.0",
    "Content-Type": "text/plain; charset=UTF-8",
    "Content-Transfer-Encoding": "8bit",
    "Plural-Forms": "nplurals=2; plural=(n != 1);",
}


def export_pot(cr, addon=ADDON):
    """The addon's terms as Odoo exports them (models, views, data, Python, JS, QWeb): what
    trans_export does, through the reader and writer it uses, which take a cursor on 18.0 and
    19.0 alike (trans_export takes a cursor on 18.0, an environment on 19.0)."""
    from odoo.tools.translate import TranslationFileWriter, TranslationModuleReader

    buffer = io.BytesIO()
    TranslationFileWriter(buffer, fileformat="po").write_rows(TranslationModuleReader(cr, modules=[addon]))
    return buffer.getvalue().decode()


MAGIC_FIELD_LABELS = re.compile(
    r"model:ir\.model\.fields,field_description:\w+\.field_\w+__(id|display_name)$"
)


def without_magic_field_labels(catalog):
    """The entries but the labels of the magic fields (ID, Display Name): Odoo 19.0 exports them
    for the models an addon only extends too, 18.0 for its own models only."""
    return [
        entry
        for entry in catalog
        if not entry.occurrences
        or not all(MAGIC_FIELD_LABELS.match(place) for place, _line in entry.occurrences)
    ]


def write_if_changed(path, text):
    """Writes `text` unless only the export's timestamps differ: no churn in git."""

    def without_dates(content):
        dates = ('"POT-Creation-Date:', '"PO-Revision-Date:')
        return [line for line in content.splitlines() if not line.startswith(dates)]

    if not path.exists() or without_dates(path.read_text()) != without_dates(text):
        path.write_text(text)


def entry_key(entry):
    return (entry.msgctxt, entry.msgid)


def merge(pot, po, lang):
    """A new catalog: the .pot's entries (with their references and flags) carrying the
    translations `po` already has."""
    known = {entry_key(entry): entry for entry in po if not entry.obsolete}
    merged = polib.POFile(wrapwidth=78)
    merged.header = po.header or f"Translation of {ADDON} ({lang})."
    merged.metadata = {
        **pot.metadata,
        **HEADER,
        "Language": lang,
        **{key: value for key, value in po.metadata.items() if key in ("Last-Translator", "Language-Team")},
    }
    for template in pot:
        entry = polib.POEntry(
            msgctxt=template.msgctxt,
            msgid=template.msgid,
            msgstr=known[entry_key(template)].msgstr if entry_key(template) in known else "",
            occurrences=template.occurrences,
            comment=template.comment,
            tcomment=template.tcomment,
            flags=[flag for flag in template.flags if flag != "fuzzy"],
        )
        merged.append(entry)
    return merged


def untranslated(po):
    return [entry.msgid for entry in po if not entry.obsolete and not entry.msgstr.strip()]


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-c", dest="conf", required=True)
    parser.add_argument("-d", dest="database", required=True)
    args = parser.parse_args()

    from odoo.modules.registry import Registry
    from odoo.tools import config

    config.parse_config(["-c", args.conf, "-d", args.database])
    with Registry(args.database).cursor() as cr:
        pot_text = export_pot(cr)
    write_if_changed(POT, pot_text)
    pot = polib.pofile(pot_text)
    print(f"{POT.relative_to(I18N.parent.parent)}: {len(pot)} terms")
    missing_total = 0
    for po_path in sorted(I18N.glob("*.po")):
        merged = merge(pot, polib.pofile(str(po_path)), po_path.stem)
        write_if_changed(po_path, merged.__unicode__())
        missing = untranslated(merged)
        missing_total += len(missing)
        print(
            f"{po_path.relative_to(I18N.parent.parent)}: {len(merged) - len(missing)} translated, "
            f"{len(missing)} to translate"
        )
        for msgid in missing:
            print(f"    {msgid[:100]!r}")
    return 1 if missing_total else 0


if __name__ == "__main__":
    sys.exit(main())
