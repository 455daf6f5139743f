"""What the customer's tenant grants, and how to take it back: a group with hidden membership
needs Member.Read.Hidden (Graph answers the same 403 as for a missing GroupMember.Read.All, so
the group's visibility tells them apart), and Disconnect's confirmation says how to remove the
app in the customer's tenant."""

from .common import CONTOSO_ID, AzureAdCase

BOARD = "6a8c1b2e-3d4f-4a5b-8c7d-9e0f1a2b3c4d"
ROLES = ["User.Read.All", "GroupMember.Read.All", "Domain.Read.All"]


class TestTenantPermissions(AzureAdCase):
    def test_a_group_with_hidden_membership_asks_for_member_read_hidden(self):
        self.connect()
        member = self.fake.tenant(CONTOSO_ID)["users"][0]["id"]
        self.fake.set_groups(
            CONTOSO_ID,
            [{"id": BOARD, "displayName": "Board", "visibility": "HiddenMembership", "members": [member]}],
        )
        self.integration.group_ids = BOARD
        count = len(self.contacts())
        error = self.integration.sync_contacts()[0]["error"]
        self.assertIn("Member.Read.Hidden", error)
        self.assertNotIn("GroupMember.Read.All to your", error, "that one is granted already")
        self.assertEqual((self.integration.state, self.integration.last_error_kind), ("error", "consent"))
        self.assertEqual(len(self.contacts()), count, "nothing changed")
        # The MSP adds the permission and the customer consents again: a new token carries it.
        self.fake.set_roles(CONTOSO_ID, [*ROLES, "Member.Read.Hidden"])
        result = self.integration.sync_contacts()[0]
        self.assertNotIn("error", result)
        self.assertEqual(self.integration.state, "connected")

    def test_a_missing_group_permission_still_asks_for_group_member_read_all(self):
        self.connect()
        self.fake.set_groups(CONTOSO_ID, [{"id": BOARD, "visibility": "HiddenMembership", "members": []}])
        self.fake.set_roles(CONTOSO_ID, ["User.Read.All"])
        self.fake.expire_tokens()
        self.integration.group_ids = BOARD
        error = self.integration.sync_contacts()[0]["error"]
        self.assertIn("GroupMember.Read.All", error)
        self.assertNotIn("Member.Read.Hidden", error)

    def test_disconnect_says_how_to_remove_the_app_in_the_customers_tenant(self):
        self.connect()
        wizard = self.env["azure.ad.disconnect.wizard"].create({"integration_id": self.integration.id})
        arch = wizard.get_views([(False, "form")])["views"]["form"]["arch"]
        for words in ("Enterprise applications", "Properties", "Delete", "Cloud Application Administrator"):
            self.assertIn(words, arch)
