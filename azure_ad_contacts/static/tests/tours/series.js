/**
 * What differs between Odoo 18.0 and 19.0 in the browser tours (series.py is the Python side).
 */
import { session } from "@web/session";

const odoo19 = session.server_version_info[0] >= 19;

/**
 * A step whose action leaves the page (to Microsoft's page, or a full reload): Odoo 19.0's tours
 * stop there only when told, 18.0's know no such key.
 */
export function leavesPage(step) {
    return odoo19 ? { ...step, expectUnloadPage: true } : step;
}

/** The tab of a company's contacts in the partner form, in English and in German. */
export const contactsTab = odoo19 ? "Contacts" : "Contacts & Addresses";
export const contactsTabGerman = odoo19 ? "Kontakte" : "Kontakte & Adressen";
