"""test_route_roles.py: every route, called with every role and with no token,
gets exactly the access SPEC §1 gives (401 without a valid token, 403 for a
known token without the right, anything else when allowed).

Calls that are allowed are made with bodies that fail validation where the
route changes state, so that the table checks access without changing the
world under the next row."""

import os
import re
import unittest

from osse_harness import ServerTestCase, main, uniq

SRC = os.environ.get("OSSE_SRC") or os.path.join(os.path.dirname(__file__), "..", "..")

ROLES = ["anon", "platform", "portal", "portal_other", "agency", "agency_other",
         "auditor", "payment"]
PUBLIC = set(ROLES)
ALL_KNOWN = set(ROLES) - {"anon"}

# (method, path template, body, roles allowed)
TABLE = [
    ("GET", "/healthz", None, PUBLIC),
    ("GET", "/metrics", None, PUBLIC),
    ("GET", "/v1/openapi.json", None, PUBLIC),
    ("GET", "/v1/schema/workflow.json", None, PUBLIC),
    ("GET", "/v1/track/{code}", None, PUBLIC),
    ("GET", "/v1/public/services", None, PUBLIC),
    ("GET", "/v1/public/services/{wf}", None, PUBLIC),
    ("POST", "/v1/workflows", {}, {"platform"}),
    ("GET", "/v1/workflows", None, {"platform", "auditor"}),
    ("GET", "/v1/workflows/{wf}", None, ALL_KNOWN),
    ("GET", "/v1/workflows/{wf}/versions/1", None, ALL_KNOWN),
    ("PUT", "/v1/calendars/th-gov", {}, {"platform"}),
    ("GET", "/v1/calendars", None, {"platform", "auditor"}),
    ("GET", "/v1/calendars/th-gov", None, ALL_KNOWN),
    ("PUT", "/v1/agencies/{A}", {}, {"platform"}),
    ("GET", "/v1/agencies", None, {"platform", "auditor"}),
    ("GET", "/v1/agencies/{A}", None, {"platform", "agency"}),
    # No body: the unknown agency's 404 comes after the role's check, so the
    # table rotates nothing.
    ("POST", "/v1/agencies/{nosuch}/secret", None, {"platform"}),
    ("GET", "/v1/agencies/{A}/tasks", None, {"platform", "agency"}),
    ("POST", "/v1/principals", {}, {"platform"}),
    ("GET", "/v1/principals", None, {"platform", "auditor"}),
    ("GET", "/v1/principals/me", None, ALL_KNOWN),
    ("DELETE", "/v1/principals/{victim}", None, {"platform"}),
    ("POST", "/v1/requests", {}, {"portal", "portal_other", "platform"}),
    ("GET", "/v1/requests", None, {"platform", "auditor", "portal", "portal_other"}),
    ("GET", "/v1/requests/{rid}", None, {"platform", "auditor", "portal", "agency"}),
    ("GET", "/v1/requests/{rid}/events", None, {"platform", "auditor", "portal", "agency"}),
    ("POST", "/v1/requests/{rid}/info", {}, {"portal"}),
    ("POST", "/v1/requests/{rid}/withdraw", {"reason": 5}, {"portal"}),
    ("DELETE", "/v1/requests/{rid}/personal-data", {"reason": 5}, {"platform"}),
    ("POST", "/v1/requests/{rid}/payments", {}, {"payment"}),
    ("POST", "/v1/tasks/{rid}/intake/decision", {}, {"agency"}),
    ("PUT", "/v1/subscriptions/{sub}", {}, {"platform", "portal", "portal_other"}),
    ("GET", "/v1/subscriptions", None, {"platform", "auditor", "portal", "portal_other"}),
    ("GET", "/v1/subscriptions/{sub}", None, {"platform", "portal", "portal_other"}),
    ("DELETE", "/v1/subscriptions/{sub}", None, {"platform", "portal", "portal_other"}),
    ("GET", "/v1/log", None, {"platform", "auditor"}),
    ("GET", "/v1/stats", None, {"platform", "auditor"}),
    ("GET", "/v1/admin/digest", None, {"platform", "auditor"}),
    ("GET", "/v1/log/checkpoint", None, PUBLIC),
    ("GET", "/v1/log/public-key", None, PUBLIC),
    ("GET", "/v1/log/proof/inclusion?seq=1&size=1", None, {"platform", "auditor"}),
    ("GET", "/v1/log/proof/consistency?from=1&to=2", None, PUBLIC),
    # The revocation's body fails first (422) for every role the route
    # takes; which agency may revoke which licence is test_licences.py's.
    ("POST", "/v1/licences/{lic}/revoke", {}, {"platform", "agency", "agency_other"}),
    ("GET", "/v1/public/licences", None, PUBLIC),
    ("GET", "/v1/public/licences.csv", None, PUBLIC),
    ("GET", "/v1/public/licences/{lic}", None, PUBLIC),
    # An upload of "{}" is a file like any other; who reads which file is
    # test_files.py's.
    ("POST", "/v1/files", {}, {"platform", "portal", "portal_other"}),
    ("GET", "/v1/files/f-nosuch", None, {"platform", "auditor", "portal", "portal_other",
                                         "agency", "agency_other"}),
    # The pages (SPEC §13): public, whatever the token; test_ui.py's.
    ("GET", "/ui", None, PUBLIC),
    ("GET", "/ui/{page}", None, PUBLIC),
    ("GET", "/ui/services/{wf}", None, PUBLIC),
    ("GET", "/ui/registry/{lic}", None, PUBLIC),
]


class TestRouteRoles(ServerTestCase):
    def test_every_route_with_every_role(self):
        w = self.world()
        wid = w.workflow()
        req = w.submit(wid)
        # The request's first step (intake) is agency A's: A has a task in
        # it, B has none yet.
        clients = {
            "anon": w.anon, "platform": w.plat, "portal": w.portal,
            "portal_other": w.portal2, "agency": w.ag[w.A], "agency_other": w.ag[w.B],
            "auditor": w.auditor, "payment": w.payment,
        }
        checked = 0
        for method, template, body, allowed in TABLE:
            for role in ROLES:
                victim = w.principal("portal")["id"]
                path = template.format(code=req["tracking_code"], wf=wid, A=w.A,
                                       rid=req["id"], victim=victim, sub=uniq("s"),
                                       lic="NO-SUCH-1", nosuch="no-such-agency", page="track")
                r = clients[role].call(method, path, body)
                what = "%s %s as %s: got %s" % (method, path, role, r)
                if role in allowed:
                    self.assertNotIn(r.status, (401, 403), what)
                elif role == "anon":
                    self.assertEqual(r.status, 401, what)
                    self.assertEqual(r.error_code, "unauthorized", what)
                else:
                    self.assertEqual(r.status, 403, what)
                    self.assertEqual(r.error_code, "forbidden", what)
                checked += 1
        self.assertEqual(checked, len(TABLE) * len(ROLES))
        # Nothing above changed the request.
        self.assertEqual(w.view(req["id"])["version"], req["version"])


class TestTableCoversEveryRoute(unittest.TestCase):
    """The table above names every route of the server's own route table
    (api/server.c routes[]), and nothing else: a new route cannot land
    without its row. /v1/test/clock exists only when the test clock is on; its
    roles are checked in test_sla.py (TestClockRoute)."""

    ELSEWHERE = {("POST", "/v1/test/clock")}

    def test_same_routes(self):
        with open(os.path.join(SRC, "api", "server.c"), encoding="utf-8") as f:
            src = f.read()
        body = src[src.index("static const route_t routes[]"):]
        body = body[:body.index("};")]
        served = {(m, re.sub(r":[a-z_]+", ":p", p))
                  for m, p in re.findall(r'\{"([A-Z]+)", "(/[^"]*)"', body)}
        self.assertGreater(len(served), 30, "cannot read routes[] in api/server.c")
        tested = set()
        for method, template, _, _ in TABLE:
            path = template.split("?")[0]
            path = re.sub(r"\{[a-zA-Z]+\}", ":p", path)
            # Literal segments that stand for a parameter in the table.
            path = re.sub(r"^/v1/calendars/th-gov$", "/v1/calendars/:p", path)
            path = re.sub(r"/versions/1$", "/versions/:p", path)
            path = re.sub(r"/intake/decision$", "/:p/decision", path)
            path = re.sub(r"^/v1/files/f-nosuch$", "/v1/files/:p", path)
            tested.add((method, path))
        self.assertEqual(sorted(served - tested - self.ELSEWHERE), [],
                         "routes the role table lacks")
        self.assertEqual(sorted(tested - served), [], "rows for routes the server lacks")


if __name__ == "__main__":
    main()
