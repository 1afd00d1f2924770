"""test_leaves.py: what leaves osse, and what it lets out (SPEC §1, §3, §7).

- A repeated POST /v1/principals with the same Idempotency-Key answers the
  first answer with "token": null, also after a crash, and the token is
  nowhere in the data folder (its remembered answer, a side record, holds
  null); the folder does hold the side records' other text in clear, so the
  scan would have found it.
- GET /v1/agencies/{id}: the platform and that agency, each with the
  webhook_secret; another agency, the auditor and a portal get 403; lists
  never hold a secret.
- POST /v1/agencies/{id}/secret: a new secret, answered once; the log's
  AgencySecretRotated holds neither secret; for 24 hours of the server's
  clock every webhook carries two signatures (v1= with the new secret, then
  v1= with the old one), also after a restart; afterwards the new one only.
- A subscription URL must be https:, without user information, and must not
  reach a loopback, private or link-local address, checked at PUT (422, no
  event) for portals and the platform alike, and again on every connection:
  a subscription set while the server allowed private URLs is not delivered
  to 127.0.0.1 once it runs without --allow-private-urls.

Every server runs on a fixed test clock; webhooks go to real receivers on
127.0.0.1 (test_hooks.Receiver).
"""

import hashlib
import hmac
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import Server, World, assert_error, detail_paths, log_events, main, uniq  # noqa: E402
from test_hooks import FAST, Receiver, one_task_workflow, set_hook  # noqa: E402

CLOCK = "--test-clock=2030-01-07T09:00:00+07:00"
PRIVATE = "--allow-private-urls"


def folder_bytes(data_dir):
    """Every file of the data folder, concatenated."""
    out = []
    for root, _, files in os.walk(data_dir):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                out.append(f.read())
    return b"\n".join(out)


def signatures(headers):
    """(t, [v1, ...]) of an Osse-Signature header, in order."""
    t, v1 = None, []
    for part in headers.get("Osse-Signature", "").split(","):
        k, _, v = part.partition("=")
        if k == "t":
            t = v
        elif k == "v1":
            v1.append(v)
    return t, v1


def mac(secret, t, body):
    return hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()


class LeavesCase(unittest.TestCase):
    extra = []

    def setUp(self):
        self.server = Server(extra_args=[CLOCK] + self.extra).start()
        self.receivers = []

    def tearDown(self):
        for r in self.receivers:
            r.close()
        try:
            if self.server.alive():
                self.assertEqual(self.server.stop(), 0, self.server.stderr_tail())
        finally:
            self.server.cleanup()

    def receiver(self):
        r = Receiver()
        self.receivers.append(r)
        return r

    def restart(self, extra=None):
        self.assertEqual(self.server.stop(), 0, self.server.stderr_tail())
        self.server.extra_args = [CLOCK] + (self.extra if extra is None else extra)
        self.server.start()


class TestTokenNotRemembered(LeavesCase):
    def test_replay_answers_token_null_and_the_folder_never_holds_it(self):
        w = World(self.server)
        name = uniq("name")
        key = {"Idempotency-Key": uniq("k")}
        body = {"role": "portal", "name": name}
        first = w.plat.post("/v1/principals", body, headers=key)
        self.assertEqual(first.status, 201, first)
        token = first.json["token"]
        self.assertTrue(token)
        again = w.plat.post("/v1/principals", body, headers=key)
        self.assertEqual(again.status, 201, again)
        self.assertEqual(again.headers.get("idempotent-replayed"), "true")
        want = dict(first.json, token=None)
        self.assertEqual(again.json, want)
        # The first answer's token works, and no second principal was made.
        self.assertEqual(self.server.client(token).get("/v1/requests").status, 200)
        names = [p["name"] for p in w.plat.get("/v1/principals?limit=500").json["principals"]]
        self.assertEqual(names.count(name), 1)
        # A secret that is a side record by design, also remembered by its
        # answer: the scan below finds such text when it is there.
        ag = w.plat.put("/v1/agencies/" + uniq("ag"), {"name": "Scan check"},
                        headers={"Idempotency-Key": uniq("k")})
        self.assertEqual(ag.status, 201, ag)
        # SIGKILL: RocksDB's write-ahead log, never compressed here, then
        # holds every record written as it was written (a clean stop would
        # flush them into tables that a compaction compresses with LZ4, where
        # a scan proves nothing).
        self.server.kill()
        data = folder_bytes(self.server.data_dir)
        self.assertIn(name.encode(), data)
        self.assertIn(ag.json["webhook_secret"].encode(), data)
        self.assertNotIn(token.encode(), data)
        # The token without its "osse_" prefix (its random part is
        # base64url, which has '_' too: the text after the last '_' was
        # once two bytes, found by chance in the binary data).
        self.assertTrue(token.startswith("osse_"), token)
        self.assertNotIn(token[len("osse_"):].encode(), data)
        # The remembered answer survives the crash.
        self.server.start()
        w.plat = self.server.client(w.admin_token)
        again = w.plat.post("/v1/principals", body, headers=key)
        self.assertEqual((again.status, again.json), (201, want), again)


class TestAgencyRead(LeavesCase):
    def test_the_platform_and_that_agency_only(self):
        w = World(self.server)
        for who in (w.plat, w.ag[w.A]):
            r = who.get("/v1/agencies/" + w.A)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["webhook_secret"], w.secrets[w.A])
            self.assertEqual(r.json["name"], "Agency " + w.A)
        for who in (w.ag[w.B], w.auditor, w.portal, w.payment):
            assert_error(self, who.get("/v1/agencies/" + w.A), 403, "forbidden")
        assert_error(self, w.anon.get("/v1/agencies/" + w.A), 401, "unauthorized")
        assert_error(self, w.plat.get("/v1/agencies/" + uniq("none")), 404, "not_found")
        for who in (w.plat, w.auditor):
            r = who.get("/v1/agencies?limit=500")
            self.assertEqual(r.status, 200, r)
            self.assertNotIn("secret", r.body.decode())
            for s in w.secrets.values():
                self.assertNotIn(s, r.body.decode())


class TestRotateSecret(LeavesCase):
    # No --allow-private-urls: an agency's webhook_url is the platform's to
    # set, and SPEC §7's address rule is about subscriptions.
    extra = FAST

    def deliveries_after(self, rec, n, w, wid):
        """Submits a request and returns the webhook delivery of its task
        (headers, raw, body): the one whose body names it, not the n-th to
        arrive (a delivery made before a restart may arrive again after it,
        at least once, signed with the keys of its own attempt)."""
        rid = w.submit(wid)["id"]
        for _ in range(500):
            for headers, raw, body in list(rec.got):
                if (body.get("request") or {}).get("id") == rid:
                    return headers, raw, body
            time.sleep(0.02)
        self.fail("no delivery for %s after 10 s (%d deliveries before it: %s)"
                  % (rid, n - 1, rec.attempts))

    def test_new_secret_old_one_verifies_for_24_hours(self):
        w = World(self.server)
        rec = self.receiver()
        old = set_hook(w, w.A, rec.url).decode()
        wid = uniq("wf")
        w.publish(one_task_workflow(wid, w.A))
        before = w.log_size()
        r = w.plat.post("/v1/agencies/%s/secret" % w.A)
        self.assertEqual(r.status, 200, r)
        new = r.json["webhook_secret"]
        self.assertNotEqual(new, old)
        self.assertEqual(len(new), len(old))
        self.assertEqual(r.json["previous_secret_valid_until"], "2030-01-08T02:00:00.000Z")
        self.assertEqual((r.json["id"], r.json["webhook_url"]), (w.A, rec.url))
        self.assertEqual(w.plat.get("/v1/agencies/" + w.A).json["webhook_secret"], new)
        self.assertEqual(w.ag[w.A].get("/v1/agencies/" + w.A).json["webhook_secret"], new)
        # One event, which names neither secret.
        evs = log_events(w.plat, before)
        self.assertEqual([e["type"] for e in evs], ["AgencySecretRotated"])
        self.assertEqual(evs[0]["stream"], "agency/" + w.A)
        text = json.dumps(log_events(w.plat))
        self.assertNotIn(old, text)
        self.assertNotIn(new, text)

        def check(headers, raw, keys):
            t, v1 = signatures(headers)
            self.assertEqual(v1, [mac(k, t, raw) for k in keys], headers)

        headers, raw, _ = self.deliveries_after(rec, 1, w, wid)
        check(headers, raw, [new, old])
        # Both secrets and the old one's end are kept across a restart.
        self.restart()
        w.plat = self.server.client(w.admin_token)
        w.portal = self.server.client(w.portal.token)
        headers, raw, _ = self.deliveries_after(rec, 2, w, wid)
        check(headers, raw, [new, old])
        # A day later the old one signs no more.
        r = w.plat.post("/v1/test/clock", {"advance": "PT24H"})
        self.assertEqual(r.status, 200, r)
        headers, raw, _ = self.deliveries_after(rec, 3, w, wid)
        check(headers, raw, [new])
        # A second rotation: the secret it replaces is the one that still
        # verifies, the first is gone.
        newer = w.plat.post("/v1/agencies/%s/secret" % w.A).json["webhook_secret"]
        headers, raw, _ = self.deliveries_after(rec, 4, w, wid)
        check(headers, raw, [newer, new])

    def test_unknown_agency_and_roles(self):
        w = World(self.server)
        before = w.log_size()
        assert_error(self, w.plat.post("/v1/agencies/%s/secret" % uniq("none")), 404, "not_found")
        for who in (w.ag[w.A], w.auditor, w.portal):
            assert_error(self, who.post("/v1/agencies/%s/secret" % w.A), 403, "forbidden")
        self.assertEqual(w.log_size(), before)
        self.assertEqual(w.plat.get("/v1/agencies/" + w.A).json["webhook_secret"],
                         w.secrets[w.A])


class TestSubscriptionURLs(LeavesCase):
    def test_refused_at_put(self):
        w = World(self.server)
        before = w.log_size()
        cases = [
            ("http://example.com/hook", "https"),
            ("https://user:pw@example.com/hook", "user information"),
            ("https://127.0.0.1/hook", "loopback"),
            ("https://127.8.9.10:8443/hook", "loopback"),
            ("https://localhost/hook", "loopback"),
            ("https://[::1]/hook", "loopback"),
            ("https://[::ffff:127.0.0.1]/hook", "loopback"),
            ("https://10.1.2.3/hook", "private"),
            ("https://172.16.0.1/hook", "private"),
            ("https://192.168.1.1/hook", "private"),
            ("https://[fd00::1]/hook", "private"),
            ("https://169.254.169.254/latest", "link-local"),
            ("https://[fe80::1]/hook", "link-local"),
            ("https://0.0.0.0/hook", "unspecified"),
            ("ftp://example.com/hook", "https"),
        ]
        for client in (w.portal, w.plat):
            for url, word in cases:
                with self.subTest(url=url, client=client is w.plat and "platform" or "portal"):
                    sid = uniq("s")
                    r = client.put("/v1/subscriptions/" + sid,
                                   {"url": url, "events": ["RequestCompleted"]})
                    assert_error(self, r, 422, "invalid_request")
                    self.assertEqual(detail_paths(r), ["url"], r)
                    self.assertIn(word, json.dumps(r.json), r)
                    assert_error(self, client.get("/v1/subscriptions/" + sid), 404, "not_found")
        self.assertEqual(w.log_size(), before)
        # A public address, and a name that does not resolve (yet: every
        # connection is checked again), are taken.
        for url in ("https://203.0.113.7/hook", "https://osse-test.invalid/hook"):
            r = w.portal.put("/v1/subscriptions/" + uniq("s"),
                             {"url": url, "events": ["RequestCompleted"]})
            self.assertEqual(r.status, 201, r)
            self.assertEqual(r.json["url"], url)

    def test_checked_again_at_delivery(self):
        # Set while the server allowed private URLs; delivered to 127.0.0.1
        # then, never after a restart without the flag.
        self.restart([PRIVATE] + FAST)
        w = World(self.server)
        rec = self.receiver()
        sid = uniq("s")
        r = w.portal.put("/v1/subscriptions/" + sid, {"url": rec.url, "events": ["StepOpened"]})
        self.assertEqual(r.status, 201, r)
        rec.secret = r.json["secret"].encode()
        wid = uniq("wf")
        w.publish(one_task_workflow(wid, w.A))
        w.submit(wid)
        self.assertEqual(len(rec.wait(1)), 1)
        self.restart(FAST)
        w.plat = self.server.client(w.admin_token)
        w.portal = self.server.client(w.portal.token)
        w.submit(wid)
        want = "not connected: 127.0.0.1 is a loopback address"
        deadline = time.monotonic() + 10
        while want not in self.server.stderr_tail(400) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn(want, self.server.stderr_tail(400))
        self.assertEqual(len(rec.attempts), 1, rec.attempts)


if __name__ == "__main__":
    main()
