"""test_content_types.py: a body of a type the route does not take is 415
and changes nothing (SPEC §11).

Issue 10: a JSON body sent as text/plain was accepted and written. JSON
routes take application/json; POST /v1/workflows also application/yaml,
application/x-yaml and text/yaml. Parameters (`; charset=utf-8`) are
ignored and type names are case-insensitive; a body without a Content-Type
is 415 too; an empty body needs no type (routes whose keys are all optional,
such as withdraw, read it as {}; the others say it is empty). Every route
that takes a body is tried, from the route table's list of them, and the
log's size shows that a 415 wrote nothing.
"""

import http.client
import json

from osse_harness import Server, ServerTestCase, World, good_form, main, uniq

YAML_TYPES = ["application/yaml", "application/x-yaml", "text/yaml"]


class TestContentTypes(ServerTestCase):

    @classmethod
    def setUpClass(cls):
        cls.server = Server(extra_args=["--test-clock=2026-12-01T09:00:00+07:00",
                                        "--allow-private-urls"]).start()
        cls.w = World(cls.server)
        cls.wid = cls.w.workflow()

    def send(self, method, path, data, ctype, token):
        """data (bytes) with Content-Type ctype, or with none when ctype is None."""
        h = {"Authorization": "Bearer " + token, "Connection": "close"}
        if ctype is not None:
            h["Content-Type"] = ctype
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        try:
            # http.client adds Content-Length for bytes, never a Content-Type.
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            body = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, body
        finally:
            conn.close()

    def routes(self):
        """Every route that takes a JSON body, each as a function giving a
        fresh (method, path, body, token, statuses a good call answers)."""
        w = self.w

        def request():
            return w.submit(self.wid)["id"]

        def decision():
            rid = request()
            return ("POST", "/v1/tasks/%s/intake/decision" % rid, {"outcome": "approve"},
                    w.ag[w.A].token, {200})

        def info():
            rid = request()
            w.decide(rid, "intake", "return", reason="a document is missing")
            return ("POST", "/v1/requests/%s/info" % rid,
                    {"step": "intake", "message": "here it is"}, w.portal.token, {200})

        return {
            "PUT /v1/calendars/:id": lambda: (
                "PUT", "/v1/calendars/" + uniq("cal"),
                {"utc_offset": "+07:00", "workdays": ["mon"], "hours": ["08:30", "16:30"]},
                w.admin_token, {201}),
            "PUT /v1/agencies/:id": lambda: (
                "PUT", "/v1/agencies/" + uniq("ag"), {"name": "An agency"}, w.admin_token, {201}),
            "POST /v1/principals": lambda: (
                "POST", "/v1/principals", {"role": "portal", "name": "p"}, w.admin_token, {201}),
            "POST /v1/requests": lambda: (
                "POST", "/v1/requests", {"workflow": self.wid, "form": good_form()},
                w.portal.token, {201}),
            "POST /v1/requests/:id/info": info,
            "POST /v1/requests/:id/withdraw": lambda: (
                "POST", "/v1/requests/%s/withdraw" % request(), {"reason": "changed my mind"},
                w.portal.token, {200}),
            "POST /v1/requests/:id/payments": lambda: (
                "POST", "/v1/requests/%s/payments" % request(),
                {"step": "fee", "amount": "1.00", "reference": "X", "transaction": uniq("t")},
                # taken as JSON: the request has no fee step open (409) or
                # none of that name (422), never 415
                w.payment.token, {409, 422}),
            "POST /v1/tasks/:rid/:step/decision": decision,
            "PUT /v1/subscriptions/:id": lambda: (
                "PUT", "/v1/subscriptions/" + uniq("sub"),
                {"url": "http://127.0.0.1:9/hook", "events": ["RequestSubmitted"]},
                w.portal.token, {201}),
            "POST /v1/test/clock": lambda: (
                "POST", "/v1/test/clock", {"advance": "PT1M"}, w.admin_token, {200}),
        }

    def assert_refused(self, name, method, path, data, ctype, token):
        before = self.w.log_size()
        status, hdrs, body = self.send(method, path, data, ctype, token)
        self.assertEqual(status, 415, "%s as %r: %s %s" % (name, ctype, status, body[:300]))
        e = json.loads(body)["error"]
        self.assertEqual(e["code"], "unsupported_media_type", body)
        self.assertIn("this route takes application/json", e["message"])
        self.assertTrue(hdrs.get("content-type", "").startswith("application/json"))
        self.assertEqual(self.w.log_size(), before, "%s as %r wrote to the log" % (name, ctype))

    def test_json_routes_refuse_other_types_and_write_nothing(self):
        for name, make in self.routes().items():
            method, path, body, token, _ = make()
            data = json.dumps(body).encode()
            for ctype in ("text/plain", None, "text/plain; charset=utf-8", "application/yaml",
                          "application/jsonx", "application/x-www-form-urlencoded", ""):
                with self.subTest(route=name, ctype=ctype):
                    self.assert_refused(name, method, path, data, ctype, token)

    def test_json_routes_take_json_with_parameters_in_any_case(self):
        for name, make in self.routes().items():
            for ctype in ("application/json; charset=utf-8", "APPLICATION/JSON",
                          "Application/Json ; charset=UTF-8"):
                with self.subTest(route=name, ctype=ctype):
                    method, path, body, token, ok = make()
                    status, _, rb = self.send(method, path, json.dumps(body).encode(), ctype, token)
                    self.assertIn(status, ok, "%s as %r: %s %s" % (name, ctype, status, rb[:300]))

    def test_workflows_take_json_and_the_yaml_types(self):
        w = self.w
        for ctype in YAML_TYPES + ["TEXT/YAML; charset=utf-8", "application/json",
                                   "application/json; charset=utf-8"]:
            with self.subTest(ctype=ctype):
                wid = uniq("ct")
                d = {"id": wid, "title": "t", "steps": {"a": {"kind": "task", "agency": w.A}}}
                text = json.dumps(d) if "json" in ctype else (
                    "id: %s\ntitle: t\nsteps:\n  a: {kind: task, agency: %s}\n" % (wid, w.A))
                status, _, body = self.send("POST", "/v1/workflows", text.encode(), ctype,
                                            w.admin_token)
                self.assertEqual(status, 201, (ctype, body[:300]))
        d = {"id": uniq("ct"), "title": "t", "steps": {"a": {"kind": "task", "agency": w.A}}}
        for ctype in ("text/plain", None, "application/xml", "text/x-yaml"):
            with self.subTest(ctype=ctype):
                before = w.log_size()
                status, _, body = self.send("POST", "/v1/workflows", json.dumps(d).encode(), ctype,
                                            w.admin_token)
                self.assertEqual(status, 415, (ctype, body[:300]))
                e = json.loads(body)["error"]
                self.assertEqual(e["code"], "unsupported_media_type")
                self.assertIn("application/yaml", e["message"])
                self.assertEqual(w.log_size(), before)
        r = w.plat.get("/v1/workflows/" + d["id"])
        self.assertEqual(r.status, 404, "a refused definition was published")

    def test_an_empty_body_needs_no_type(self):
        w = self.w
        rid = w.submit(self.wid)["id"]
        # withdraw's keys are all optional: nothing at all is {}.
        status, _, body = self.send("POST", "/v1/requests/%s/withdraw" % rid, b"", None,
                                    w.portal.token)
        self.assertEqual(status, 200, body)
        self.assertEqual(w.view(rid)["status"], "withdrawn")
        # A route with required keys says the body is empty, whatever its type.
        for ctype in (None, "text/plain"):
            status, _, body = self.send("POST", "/v1/requests", b"  \n", ctype, w.portal.token)
            self.assertEqual(status, 422, body)
            self.assertIn("the body is empty", json.loads(body)["error"]["message"])

    def test_routes_without_a_body_ignore_the_type(self):
        status, _, _ = self.send("GET", "/v1/requests", None, "text/plain", self.w.admin_token)
        self.assertEqual(status, 200)
        status, _, _ = self.send("DELETE", "/v1/subscriptions/" + uniq("none"), None, "text/plain",
                                 self.w.admin_token)
        self.assertEqual(status, 404)


if __name__ == "__main__":
    main()
