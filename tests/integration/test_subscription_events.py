"""test_subscription_events.py: PUT /v1/subscriptions checks `events`
against SPEC §5's table: every request event type may be listed, the types
of other streams (Notification* above all: a delivery about a delivery would
never end) and names that are not a type, near misses too, are 422 at their
place in the list."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from osse_harness import Server, World, assert_error, uniq  # noqa: E402

# SPEC §5, request streams (SPEC §7: "subscribes a portal to request events").
REQUEST_TYPES = [
    "RequestSubmitted", "StepOpened", "StepSkipped", "TaskAutoApproved", "TaskDecided",
    "InfoProvided", "SlaWarned", "SlaBreached", "SlaRescheduled", "TaskEscalated",
    "LinkageCompleted", "LinkageFailed", "PaymentDue", "PaymentReceived", "LicenceIssued",
    "LicenceExpired", "LicenceRevoked", "SlaOverdueNotice", "RequestCompleted",
    "RequestRejected", "RequestWithdrawn", "RequestExpired", "PersonalDataErased",
    "StepFailed", "RuleFailed"]
OTHER_TYPES = [
    "WorkflowPublished", "CalendarUpdated", "AgencyUpdated", "PrincipalCreated",
    "PrincipalRevoked", "NotificationDelivered", "NotificationFailed", "SubscriptionUpdated",
    "SubscriptionDeleted", "AgencySecretRotated"]
URL = "https://example.invalid/hook"


class SubscriptionEvents(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server().start()
        cls.w = World(cls.server)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.server.cleanup()

    def test_every_request_type_may_be_listed(self):
        sid = uniq("s")
        r = self.w.portal.put("/v1/subscriptions/" + sid, {"url": URL, "events": REQUEST_TYPES})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["events"], REQUEST_TYPES)
        r = self.w.portal.get("/v1/subscriptions/" + sid)
        self.assertEqual(r.json["events"], REQUEST_TYPES)

    def test_other_types_and_non_types_are_refused(self):
        for bad in OTHER_TYPES + ["StepOpned", "stepopened", "StepOpened ",
                                  "Event", ""]:
            r = self.w.portal.put("/v1/subscriptions/" + uniq("s"),
                                  {"url": URL, "events": ["RequestCompleted", bad]})
            assert_error(self, r, 422, "invalid_request", bad)
            self.assertEqual(r.json["error"]["details"],
                             [{"path": "events[1]", "message": "not a request event type"}], bad)


if __name__ == "__main__":
    unittest.main()
