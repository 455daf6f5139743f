"""The client action that shows a notification in Odoo's web client (plain Python, no Odoo)."""


def display_notification(kind, title, message, sticky=False, next_action=None):
    """A `display_notification` action: `kind` is success, info, warning or danger; the
    `next_action` runs once it is shown (by default the view reloads)."""
    return {
        "type": "ir.actions.client",
        "tag": "display_notification",
        "params": {
            "type": kind,
            "title": title,
            "message": message,
            "sticky": sticky,
            "next": next_action or {"type": "ir.actions.client", "tag": "soft_reload"},
        },
    }
