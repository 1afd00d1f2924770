"""test_files.py: uploaded files (SPEC §2 `file` fields, §4 POST /v1/files
and GET /v1/files/{id}, §10 the 24-hour expiry under the test clock, §11).

Every server runs with a fixed test clock. What is checked: an upload's
answer and its bytes read back (Content-Type, ETag = sha256); who may read
a file; every bad upload refused with a JSON error and nothing stored; the
20 MiB limit beside the 1 MiB JSON one; the `file` field at submission
(ownership, max_size, content_types, file_taken, reuse by the same
request's info) and the metadata the form records; files no request took
gone after 24 hours of the engine's clock, taken ones kept; the body
timeout and the cap on uploads in flight; and kill -9 during uploads.

Sealed files (SPEC §8): after a clean stop no file under the data folder
holds a marker of an upload's bytes or of its name (while its sha256 and
content type, plain, are found), also with an Idempotency-Key (whose replay
and mismatch still hold); the bytes read back after a restart; a file's key
is durable before its 201 (kill -9 right after it); and a swept file leaves
no key in the key store's segments.
"""

import concurrent.futures
import hashlib
import json
import os
import random
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from osse_harness import (assert_error, Client, detail_paths, files_holding, good_form,  # noqa: E402
                          key_ids, parse_responses, Server, uniq, World)

CLOCK = "--test-clock=2030-01-07T09:00:00+07:00"
MIB = 1 << 20


def sha(b):
    return hashlib.sha256(b).hexdigest()


def stored_files(server):
    d = os.path.join(server.data_dir, "files")
    return sorted(n for n in os.listdir(d) if n != "tmp")


def tmp_files(server):
    return os.listdir(os.path.join(server.data_dir, "files", "tmp"))


def upload(client, data, ctype="application/pdf", name=None, headers=None, **kw):
    h = dict(headers or {})
    if name is not None:
        h["Osse-Filename"] = name
    return client.post("/v1/files", raw=data, content_type=ctype, headers=h, **kw)


def file_workflow(w, wid):
    return {
        "id": wid,
        "title": "Files",
        "form": {
            "business_name": {"type": "string", "required": True},
            "plan": {"type": "file", "max_size": 1000, "content_types": ["application/pdf"]},
            "photo": {"type": "file"},
            "id_card": {"type": "file", "pii": True},
        },
        "steps": {"intake": {"kind": "task", "agency": w.A}},
    }


def kept_and_gone(tc, w):
    """A file workflow, two uploads, and a request that took the first:
    (workflow id, the kept upload, the one no request took)."""
    wid = uniq("wf-files")
    w.publish(file_workflow(w, wid))
    kept = upload(w.portal, b"%PDF kept").json
    gone = upload(w.portal, b"%PDF gone").json
    r = w.portal.post("/v1/requests", {"workflow": wid,
                                       "form": {"business_name": "S", "plan": kept["id"]}})
    tc.assertEqual(r.status, 201, r)
    return wid, kept, gone


def raw_upload_head(port, length, token, extra=""):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(("POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
               "Content-Type: application/pdf\r\nContent-Length: %d\r\n%s\r\n"
               % (token, length, extra)).encode())
    return s


def read_until_close(s):
    buf = b""
    while True:
        try:
            b = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not b:
            break
        buf += b
    s.close()
    return buf


class FilesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(extra_args=[CLOCK, "--upload-timeout-ms", "800"]).start()
        cls.w = World(cls.server)

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.server.alive():
                assert cls.server.stop() == 0, cls.server.stderr_tail()
        finally:
            cls.server.cleanup()

    def test_upload_and_read_back(self):
        w = self.w
        data = os.urandom(3000) + b"%PDF"
        r = upload(w.portal, data, ctype="Application/PDF; charset=binary",
                   name="%E0%B9%81%E0%B8%9C%E0%B8%99.pdf")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(set(r.json), {"id", "sha256", "size", "content_type", "name"})
        self.assertEqual(r.json["sha256"], sha(data))
        self.assertEqual(r.json["size"], len(data))
        self.assertEqual(r.json["content_type"], "application/pdf")
        self.assertEqual(r.json["name"], "แผน.pdf")
        fid = r.json["id"]
        g = w.portal.get("/v1/files/" + fid)
        self.assertEqual(g.status, 200, g)
        self.assertEqual(g.body, data)
        self.assertEqual(g.headers["content-type"], "application/pdf")
        self.assertEqual(g.headers["etag"].strip('"'), sha(data))
        # No name: null. Only the uploader reads a file no request holds.
        r2 = upload(w.portal, b"x", ctype="text/plain")
        self.assertEqual(r2.status, 201, r2)
        self.assertIsNone(r2.json["name"])
        for c in (w.portal2, w.ag[w.A], w.auditor, w.plat):
            assert_error(self, c.get("/v1/files/" + fid), 403, "forbidden")
        assert_error(self, w.portal.get("/v1/files/f-000000000000000000000000"), 404, "not_found")
        assert_error(self, w.portal.get("/v1/files/../../log"), 404)
        # A platform may upload too; an agency, an auditor, no one may.
        self.assertEqual(upload(w.plat, b"p").status, 201)
        assert_error(self, upload(w.ag[w.A], b"a"), 403, "forbidden")
        assert_error(self, upload(w.auditor, b"a"), 403, "forbidden")
        assert_error(self, upload(w.anon, b"a"), 401)

    def test_bad_uploads_store_nothing(self):
        w = self.w
        before = stored_files(self.server)
        r = w.portal.call("POST", "/v1/files", headers={"Content-Type": ""}, raw=b"x",
                          content_type="")
        assert_error(self, r, 415, "unsupported_media_type")
        assert_error(self, upload(w.portal, b"x", ctype="pdf"), 400, "invalid_content_type")
        assert_error(self, upload(w.portal, b""), 422, "invalid_request")
        for bad in ("a%2Fb", "%ZZ", "a%00b", "%FF%FE", "%0A"):
            r = upload(w.portal, b"x", name=bad)
            assert_error(self, r, 422, "invalid_request", bad)
            self.assertEqual(detail_paths(r), ["Osse-Filename"])
        # Over 20 MiB: 413 before the body is read.
        s = raw_upload_head(self.server.port, 20 * MIB + 1, w.portal.token)
        resp = parse_responses(read_until_close(s))[0]
        self.assertEqual(resp[0][0], 413, resp)
        self.assertEqual(json.loads(resp[0][2])["error"]["code"], "payload_too_large")
        self.assertEqual(stored_files(self.server), before)
        self.assertEqual(tmp_files(self.server), [])

    def test_limits_20_mib_beside_1_mib_json(self):
        w = self.w
        data = os.urandom(20 * MIB)
        r = upload(w.portal, data, ctype="image/png")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["sha256"], sha(data))
        g = w.portal.get("/v1/files/" + r.json["id"])
        self.assertEqual(g.status, 200)
        self.assertEqual(sha(g.body), sha(data))
        # The JSON routes keep their 1 MiB.
        big = json.dumps({"workflow": "x", "form": {"a": "b" * MIB}})
        assert_error(self, w.portal.post("/v1/requests", raw=big), 413, "payload_too_large")

    def test_file_fields_at_submission(self):
        w = self.w
        wid = uniq("wf-files")
        w.publish(file_workflow(w, wid))
        pdf = b"%PDF-1.7 " + os.urandom(200)
        plan = upload(w.portal, pdf, name="plan.pdf").json
        photo = upload(w.portal, b"\x89PNG" + os.urandom(50), ctype="image/png").json
        big = upload(w.portal, os.urandom(1001)).json
        png = upload(w.portal, b"\x89PNG", ctype="image/png").json
        other = upload(w.portal2, b"%PDF other").json
        log0 = w.plat.get("/v1/log?limit=1000").json

        def submit(form, portal=None):
            return (portal or w.portal).post(
                "/v1/requests", {"workflow": wid, "form": dict({"business_name": "Shop"}, **form)})

        for form, why in (({"plan": other["id"]}, "another principal's upload"),
                          ({"plan": "f-doesnotexist"}, "unknown id"),
                          ({"plan": big["id"]}, "over max_size"),
                          ({"plan": png["id"]}, "not in content_types"),
                          ({"plan": 12}, "not a string")):
            r = submit(form)
            assert_error(self, r, 422, "invalid_form", why)
            self.assertEqual(detail_paths(r), ["form.plan"], why)
        r = submit({"plan": plan["id"], "photo": plan["id"]})
        assert_error(self, r, 422, "file_taken")
        self.assertEqual(w.plat.get("/v1/log?limit=1000").json, log0, "refusals wrote events")

        card = upload(w.portal, b"\xff\xd8 card", ctype="image/jpeg").json
        r = submit({"plan": plan["id"], "photo": photo["id"], "id_card": card["id"]})
        self.assertEqual(r.status, 201, r)
        rid = r.json["id"]
        # An auditor checks the process, not the people: no pii file.
        assert_error(self, w.auditor.get("/v1/files/" + card["id"]), 403, "forbidden")
        self.assertEqual(w.ag[w.A].get("/v1/files/" + card["id"]).status, 200)
        # Tracking by code shows no form, so no file either.
        t = w.anon.get("/v1/track/" + r.json["tracking_code"])
        self.assertEqual(t.status, 200, t)
        self.assertNotIn(plan["sha256"], t.body.decode())
        v = w.view(rid)
        self.assertEqual(v["form"]["plan"], plan)
        self.assertEqual(v["form"]["photo"], photo)
        # The event records the metadata, never the bytes.
        evs = w.plat.get("/v1/requests/%s/events" % rid).json
        evs = evs.get("events", evs)
        sub = [e for e in evs if e["type"] == "RequestSubmitted"][0]
        self.assertEqual(sub["data"]["form"]["plan"], plan)
        # Held by this request: no other may take it.
        r = submit({"plan": plan["id"]})
        assert_error(self, r, 422, "file_taken")
        self.assertEqual(detail_paths(r), ["form.plan"])
        # Readers of the request read its files; others do not.
        for c in (w.portal, w.ag[w.A], w.auditor, w.plat):
            g = c.get("/v1/files/" + plan["id"])
            self.assertEqual(g.status, 200, (c, g))
            self.assertEqual(g.body, pdf)
        for c in (w.portal2, w.ag[w.B]):
            assert_error(self, c.get("/v1/files/" + plan["id"]), 403, "forbidden")
        # Its info may give it again (and a new one).
        w.decide(rid, "intake", "return", agency=w.A)
        plan2 = upload(w.portal, b"%PDF-2").json
        r = w.portal.post("/v1/requests/%s/info" % rid,
                          {"step": "intake", "form": {"plan": plan2["id"], "photo": photo["id"]}})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["form"]["plan"], plan2)
        self.assertEqual(r.json["form"]["photo"], photo)
        # ... but the other portal's request cannot take plan2 now.
        r = submit({"plan": plan2["id"]})
        assert_error(self, r, 422, "file_taken")

    def test_untaken_files_expire_after_24_hours(self):
        # A server of its own: the clock moves.
        srv = Server(extra_args=[CLOCK]).start()
        try:
            w = World(srv)
            wid, kept, gone = kept_and_gone(self, w)
            self.assertEqual(w.plat.post("/v1/test/clock", {"advance": "PT23H59M"}).status, 200)
            self.assertEqual(w.portal.get("/v1/files/" + gone["id"]).status, 200)
            late = upload(w.portal, b"%PDF late").json
            self.assertEqual(w.plat.post("/v1/test/clock", {"advance": "PT1M"}).status, 200)
            assert_error(self, w.portal.get("/v1/files/" + gone["id"]), 404, "not_found")
            r = w.portal.post("/v1/requests", {"workflow": wid,
                                               "form": {"business_name": "S", "plan": gone["id"]}})
            assert_error(self, r, 422, "invalid_form")
            self.assertEqual(w.portal.get("/v1/files/" + late["id"]).status, 200)
            self.assertEqual(w.plat.post("/v1/test/clock", {"advance": "P30D"}).status, 200)
            self.assertEqual(w.portal.get("/v1/files/" + kept["id"]).status, 200)
            assert_error(self, w.portal.get("/v1/files/" + late["id"]), 404)
            # The bytes are gone from disk too (a clean stop waits for the
            # pool), and a restart does not bring them back.
            self.assertEqual(srv.stop(), 0)
            self.assertEqual(stored_files(srv), [kept["id"]])
            srv.start()
            w.portal.port = srv.port
            self.assertEqual(w.portal.get("/v1/files/" + kept["id"]).status, 200)
            assert_error(self, w.portal.get("/v1/files/" + gone["id"]), 404)
        finally:
            srv.cleanup()

    def test_body_timeout(self):
        w = self.w
        s = raw_upload_head(self.server.port, 1000, w.portal.token)
        s.sendall(b"x" * 10)
        resp = parse_responses(read_until_close(s))[0]
        self.assertEqual(resp[0][0], 408, resp)
        self.assertEqual(tmp_files(self.server), [])

    def test_cap_on_uploads_in_flight(self):
        w = self.w
        held = []
        for _ in range(8):
            s = raw_upload_head(self.server.port, 4, w.portal.token, "Expect: 100-continue\r\n")
            # The interim answer says the server has counted this upload.
            self.assertTrue(s.recv(64).startswith(b"HTTP/1.1 100 Continue"))
            held.append(s)
        s = raw_upload_head(self.server.port, 4, w.portal.token)
        resp = parse_responses(read_until_close(s))[0]
        self.assertEqual(resp[0][0], 503, resp)
        self.assertEqual(json.loads(resp[0][2])["error"]["code"], "too_many_uploads")
        # They finish: their 201s; then a new upload has room again.
        for h in held:
            h.sendall(b"%PDF")
            buf = b""
            while not parse_responses(buf)[0]:
                b = h.recv(4096)
                self.assertTrue(b, buf)
                buf += b
            self.assertEqual(parse_responses(buf)[0][0][0], 201, buf)
            h.close()
        self.assertEqual(upload(w.portal, b"%PDF").status, 201)


class FilesSealedTest(unittest.TestCase):
    def setUp(self):
        self.server = Server(extra_args=[CLOCK]).start()
        self.w = World(self.server)

    def tearDown(self):
        self.server.cleanup()

    def test_bytes_and_names_never_stored_plain(self):
        w, srv = self.w, self.server
        wid = uniq("wf-files")
        w.publish(file_workflow(w, wid))
        tag = os.urandom(8).hex()
        mb, mn = ("MARKER-FILEBYTES-" + tag).encode(), "MARKER-FILENAME-" + tag
        # Several 64 KiB chunks; the marker at both ends.
        data = mb + os.urandom(200_000) + mb
        key = {"Idempotency-Key": "up-" + tag}
        r = upload(w.portal, data, name=mn + ".pdf", headers=key)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["name"], mn + ".pdf")
        self.assertEqual(r.json["sha256"], sha(data))
        fid = r.json["id"]
        # The Idempotency-Key still replays (name in plain) and still
        # refuses another body.
        again = upload(w.portal, data, name=mn + ".pdf", headers=key)
        self.assertEqual(again.status, 201, again)
        self.assertEqual(again.json, r.json)
        self.assertEqual(again.headers.get("idempotent-replayed"), "true")
        assert_error(self, upload(w.portal, data + b"x", name=mn + ".pdf", headers=key), 422,
                     "idempotency_mismatch")
        # One Idempotency-Key on six connections at once: one file, one
        # answer (the copies stored meanwhile are removed, keys and bytes).
        before = set(stored_files(srv))
        keys_dir = os.path.join(srv.data_dir, "keys")
        keys_before = {k for k in key_ids(keys_dir) if k.startswith("f-")}
        rkey = {"Idempotency-Key": "race-" + tag}
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(
                lambda _: upload(Client(srv.port, w.portal.token), data, name="r.pdf",
                                 headers=rkey), range(6)))
        self.assertEqual({a.status for a in answers}, {201}, answers)
        self.assertEqual(len({a.json["id"] for a in answers}), 1, [a.json for a in answers])
        won = answers[0].json["id"]
        def left():
            return (set(stored_files(srv)) - before,
                    {k for k in key_ids(keys_dir) if k.startswith("f-")} - keys_before)
        for _ in range(400):  # the copies go on the pool
            if left() == ({won}, {won}):
                break
            time.sleep(0.025)
        self.assertEqual(left(), ({won}, {won}))
        self.assertEqual(w.portal.get("/v1/files/" + won).body, data)
        # One held by a pii field, one by no request.
        mb2, mn2 = ("MARKER-LOOSEBYTES-" + tag).encode(), "MARKER-LOOSENAME-" + tag
        data2 = mb2 + os.urandom(70_000)
        loose = upload(w.portal, data2, ctype="image/png", name=mn2 + ".png").json
        r = w.portal.post("/v1/requests", {"workflow": wid, "form": {
            "business_name": "Shop", "id_card": fid}})
        self.assertEqual(r.status, 201, r)
        for f, b in ((fid, data), (loose["id"], data2)):
            self.assertEqual(w.portal.get("/v1/files/" + f).body, b)
        self.assertEqual(srv.stop(), 0)
        markers = [mb, mn.encode(), mb2, mn2.encode()]
        found = files_holding(srv.data_dir, markers + [sha(data).encode(), b"image/png"])
        for m in markers:
            self.assertEqual(found[m], [], "%r in plain under the data folder" % m)
        # The search can fail: the plain metadata is there.
        self.assertNotEqual(found[sha(data).encode()], [])
        self.assertNotEqual(found[b"image/png"], [])
        self.assertEqual(sorted(stored_files(srv)), sorted([fid, loose["id"], won]))
        srv.start()
        w.portal.port = srv.port
        for f, b in ((fid, data), (loose["id"], data2)):
            g = w.portal.get("/v1/files/" + f)
            self.assertEqual(g.status, 200, g)
            self.assertEqual(g.body, b)
        w.ag[w.A].port = srv.port
        self.assertEqual(w.ag[w.A].get("/v1/files/" + fid).body, data)

    def test_swept_file_leaves_no_key(self):
        w, srv = self.w, self.server
        wid, kept, gone = kept_and_gone(self, w)
        keys = os.path.join(srv.data_dir, "keys")
        self.assertLessEqual({kept["id"], gone["id"]}, key_ids(keys))
        self.assertEqual(w.plat.post("/v1/test/clock", {"advance": "PT25H"}).status, 200)
        assert_error(self, w.portal.get("/v1/files/" + gone["id"]), 404)
        # Removed on the pool once the record's deletion is durable.
        for _ in range(200):
            if gone["id"] not in key_ids(keys):
                break
            time.sleep(0.05)
        self.assertNotIn(gone["id"], key_ids(keys))
        self.assertIn(kept["id"], key_ids(keys))
        self.assertEqual(srv.stop(), 0)
        self.assertEqual(stored_files(srv), [kept["id"]])
        srv.start()
        w.portal.port = srv.port
        self.assertNotIn(gone["id"], key_ids(keys))
        self.assertEqual(w.portal.get("/v1/files/" + kept["id"]).body, b"%PDF kept")


def files_read(srv):
    """The `files` of the last start's "files read" line: the files it kept
    in memory."""
    with open(srv.log_path, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    last = text.rsplit("===== start", 1)[-1]
    got = [ln for ln in last.splitlines() if "files read" in ln]
    assert got, last[-2000:]
    return int(got[-1].split("files=")[1].split()[0])


class FilesOnDiskTest(unittest.TestCase):
    """Memory holds the files of open work (issue 13): a file an ended
    request took is read from disk when a call names it, and a start reads
    only the records of files untaken or held by open requests."""

    def test_files_of_ended_requests_stay_on_disk(self):
        srv = Server(extra_args=[CLOCK]).start()
        try:
            w = World(srv)
            wid = uniq("wf-files")
            w.publish(file_workflow(w, wid))
            ended = upload(w.portal, b"%PDF ended", name="ended.pdf").json
            held = upload(w.portal, b"%PDF held").json
            loose = upload(w.portal, b"%PDF loose").json
            r1 = w.portal.post("/v1/requests", {"workflow": wid, "form": {
                "business_name": "S", "plan": ended["id"]}})
            self.assertEqual(r1.status, 201, r1)
            r2 = w.portal.post("/v1/requests", {"workflow": wid, "form": {
                "business_name": "S", "plan": held["id"]}})
            self.assertEqual(r2.status, 201, r2)
            r = w.portal.post("/v1/requests/%s/withdraw" % r1.json["id"], {})
            self.assertEqual(r.status, 200, r)
            for attempt in range(2):
                self.assertEqual(srv.stop(), 0)
                env = {"OSSE_TEST_FILES_UNINDEXED": "1"} if attempt else {}
                os.environ.update(env)
                try:
                    srv.start()
                finally:
                    for k in env:
                        del os.environ[k]
                w.portal.port = w.plat.port = srv.port
                # The one untaken and the one the open request holds.
                self.assertEqual(files_read(srv), 2)
                g = w.portal.get("/v1/files/" + ended["id"])
                self.assertEqual(g.status, 200, g)
                self.assertEqual(g.body, b"%PDF ended")
                self.assertEqual(w.portal.get("/v1/files/" + held["id"]).body, b"%PDF held")
                self.assertEqual(w.portal.get("/v1/files/" + loose["id"]).body, b"%PDF loose")
                # Still held by the ended request, from disk.
                r = w.portal.post("/v1/requests", {"workflow": wid, "form": {
                    "business_name": "S", "plan": ended["id"]}})
                assert_error(self, r, 422, "file_taken")
                # After a sweep it leaves memory again and still reads.
                self.assertEqual(w.plat.post("/v1/test/clock", {"advance": "PT1H"}).status, 200)
                self.assertEqual(w.portal.get("/v1/files/" + ended["id"]).body, b"%PDF ended")
                v = w.portal.get("/v1/requests/" + r1.json["id"])
                self.assertEqual(v.json["form"]["plan"]["id"], ended["id"], v)
            # Its request withdrawn too, the held one is no longer kept.
            r = w.portal.post("/v1/requests/%s/withdraw" % r2.json["id"], {})
            self.assertEqual(r.status, 200, r)
            self.assertEqual(srv.stop(), 0)
            srv.start()
            w.portal.port = srv.port
            self.assertEqual(files_read(srv), 1)
            self.assertEqual(w.portal.get("/v1/files/" + held["id"]).body, b"%PDF held")
            self.assertEqual(sorted(stored_files(srv)),
                             sorted([ended["id"], held["id"], loose["id"]]))
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()

    def test_upload_a_crash_stopped_before_its_record(self):
        srv = Server(extra_args=[CLOCK]).start()
        try:
            c = srv.client(srv.admin_token())
            first = upload(c, b"%PDF first").json
            self.assertEqual(srv.stop(), 0)
            os.environ["OSSE_TEST_CRASH_BEFORE_FILE_RECORD"] = "1"
            try:
                srv.start()
            finally:
                del os.environ["OSSE_TEST_CRASH_BEFORE_FILE_RECORD"]
            c = srv.client(srv.admin_token())
            try:
                r = upload(c, b"%PDF never recorded")
                self.fail("answered %r" % (r,))
            except Exception:  # noqa: BLE001 - the hook ended the process
                pass
            srv.proc.wait(30)
            self.assertEqual(srv.proc.returncode, 137)
            keys = os.path.join(srv.data_dir, "keys")
            stray = set(stored_files(srv)) - {first["id"]}
            self.assertEqual(len(stray), 1, stored_files(srv))
            self.assertIn(stray.pop(), key_ids(keys))
            srv.start()
            c = srv.client(srv.admin_token())
            # The bytes and the key of the upload without a record are gone,
            # found by its pending record (no start reads the folder).
            self.assertEqual(stored_files(srv), [first["id"]])
            self.assertEqual({k for k in key_ids(keys) if k.startswith("f-")}, {first["id"]})
            self.assertEqual(c.get("/v1/files/" + first["id"]).body, b"%PDF first")
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()


class FilesCrashTest(unittest.TestCase):
    def test_key_durable_before_201(self):
        srv = Server(extra_args=[CLOCK]).start()
        try:
            c = srv.client(srv.admin_token())
            data = os.urandom(150_000)
            r = upload(c, data, name="x.pdf")
            self.assertEqual(r.status, 201, r)
            srv.kill()  # right after the 201: nothing more was written
            srv.start()
            c = srv.client(srv.admin_token())
            g = c.get("/v1/files/" + r.json["id"])
            self.assertEqual(g.status, 200, g)
            self.assertEqual(g.body, data)
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()

    def test_kill_during_uploads(self):
        srv = Server(extra_args=[CLOCK]).start()
        try:
            tok = srv.admin_token()
            acked = {}
            lock = threading.Lock()
            stop = threading.Event()
            enough = threading.Event()

            def worker(seed):
                rng = random.Random(seed)
                c = srv.client(tok)
                while not stop.is_set():
                    data = rng.randbytes(rng.randint(1, 3 * MIB))
                    try:
                        r = upload(c, data, ctype="application/octet-stream")
                    except Exception:  # noqa: BLE001 - the server was killed
                        return
                    if r.status == 201:
                        with lock:
                            acked[r.json["id"]] = sha(data)
                            if len(acked) >= 12:
                                enough.set()

            threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
            for t in threads:
                t.start()
            self.assertTrue(enough.wait(120), srv.stderr_tail())
            srv.kill()
            stop.set()
            for t in threads:
                t.join(30)
            srv.start()
            c = srv.client(tok)
            with lock:
                got = dict(acked)
            for fid, h in got.items():
                g = c.get("/v1/files/" + fid)
                self.assertEqual(g.status, 200, (fid, g))
                self.assertEqual(sha(g.body), h)
                self.assertEqual(g.headers["etag"].strip('"'), h)
            # What is on disk is whole and served; nothing half written stays.
            self.assertEqual(tmp_files(srv), [])
            for fid in stored_files(srv):
                g = c.get("/v1/files/" + fid)
                self.assertEqual(g.status, 200, (fid, g))
                self.assertEqual(g.headers["etag"].strip('"'), sha(g.body))
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()


if __name__ == "__main__":
    unittest.main()
