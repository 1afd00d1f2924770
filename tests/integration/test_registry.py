"""test_registry.py: the public registry (SPEC §9) over real HTTP.

One server with `--test-clock=2030-01-07T09:00:00+07:00` for the class;
each test publishes workflows of its own (numbers with a prefix of its own)
and filters by them, so tests do not see each other's licences.

What is checked:
- GET /v1/public/licences: entries {number, workflow, title, status,
  valid_from, valid_until, fields, revoked_at, reason}, newest first, no
  token needed; q (number or public field text, without case; at most 100
  characters, else 422), workflow, status, limit and cursor pages that cover
  every licence once; unknown parameters, bad status, limit or cursor: 422;
- GET /v1/public/licences/{number}: the entry plus document and jws; 404;
- GET /v1/public/licences.csv: chunked, text/csv, RFC 4180 (CRLF, header
  row, quotes doubled, cells with commas or line breaks quoted, empty cells
  for null), the formula guard, fields as a JSON object, and with workflow=
  one field.<name> column per public field of the latest version; several
  slices (hundreds of licences) arrive whole; a client that does not read
  its export does not stop the server from answering others; clients that
  go in the middle of an export (while a page of the index is being read)
  leave the server serving, and the next export is whole.
"""

import csv
import io
import json
import os
import random
import socket
import string
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import FORM_FIELDS, Server, World, good_form, main  # noqa: E402

START = "2030-01-07T09:00:00+07:00"


def prefix():
    return "R" + "".join(random.choice(string.ascii_uppercase) for _ in range(6))


class RegistryCase(unittest.TestCase):
    server = None

    @classmethod
    def setUpClass(cls):
        cls.server = Server(extra_args=["--test-clock=" + START]).start()
        cls.w = World(cls.server)

    @classmethod
    def tearDownClass(cls):
        rc = cls.server.stop()
        cls.server.cleanup()
        assert rc == 0, "osse exited with %s" % rc

    def publish(self, public=("business_name", "district"), title=None):
        pfx = prefix()
        wid = "reg-" + pfx.lower()
        d = {"id": wid, "title": title or ("Registry " + wid),
             "form": json.loads(json.dumps(FORM_FIELDS)),
             "steps": {"licence": {"kind": "issue", "number": pfx + "-{seq:5}",
                                   "valid_for": "P1Y", "public_fields": list(public)}}}
        self.w.publish(d)
        return wid, pfx

    def issue(self, wid, **form):
        req = self.w.submit(wid, good_form(**form))
        v = self.w.view(req["id"])
        self.assertEqual(v["status"], "completed", v)
        return v["licence"]["number"]

    def get(self, path):
        return self.w.anon.get(path)

    def csv_rows(self, query):
        r = self.get("/v1/public/licences.csv" + query)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("content-type"), "text/csv; charset=utf-8")
        self.assertEqual(r.headers.get("transfer-encoding"), "chunked")
        self.assertNotIn("content-length", r.headers)
        text = r.body.decode("utf-8")
        self.assertFalse(text.startswith("\ufeff"), "no BOM")
        self.assertTrue(text.endswith("\r\n"))
        return text, list(csv.reader(io.StringIO(text, newline="")))

    # -- the JSON list ---------------------------------------------------------

    def test_list_filters_and_pages(self):
        wid, pfx = self.publish()
        nums = [self.issue(wid, business_name="Shop %d" % i,
                           district="pathum-wan" if i % 2 else "bang-rak") for i in range(7)]
        r = self.get("/v1/public/licences?workflow=" + wid)
        self.assertEqual(r.status, 200, r)
        got = r.json["licences"]
        self.assertEqual([x["number"] for x in got], nums[::-1])  # newest first
        self.assertIsNone(r.json["next_cursor"])
        e = got[0]
        self.assertEqual(sorted(e), sorted(["number", "workflow", "title", "status", "valid_from",
                                            "valid_until", "fields", "revoked_at", "reason"]))
        self.assertEqual(e["fields"], {"business_name": "Shop 6", "district": "bang-rak"})
        self.assertEqual((e["status"], e["revoked_at"], e["reason"]), ("valid", None, None))
        self.assertEqual(e["title"], "Registry " + wid)
        # q: number or public field text, without regard to case.
        r = self.get("/v1/public/licences?q=shop%203&workflow=" + wid)
        self.assertEqual([x["number"] for x in r.json["licences"]], [nums[3]])
        r = self.get("/v1/public/licences?q=" + nums[5].lower())
        self.assertEqual([x["number"] for x in r.json["licences"]], [nums[5]])
        r = self.get("/v1/public/licences?q=PATHUM&workflow=" + wid)
        self.assertEqual([x["number"] for x in r.json["licences"]], [nums[5], nums[3], nums[1]])
        # The applicant's name is personal, never a public field: no match.
        r = self.get("/v1/public/licences?q=somchai&workflow=" + wid)
        self.assertEqual(r.json["licences"], [])
        # status.
        r = self.w.plat.post("/v1/licences/%s/revoke" % nums[2], {"reason": "closed"})
        self.assertEqual(r.status, 200, r)
        r = self.get("/v1/public/licences?status=revoked&workflow=" + wid)
        self.assertEqual([(x["number"], x["reason"]) for x in r.json["licences"]],
                         [(nums[2], "closed")])
        r = self.get("/v1/public/licences?status=valid&workflow=" + wid)
        self.assertEqual(len(r.json["licences"]), 6)
        # Pages of 3 cover all seven once, newest first.
        seen, cursor = [], None
        for _ in range(10):
            path = "/v1/public/licences?limit=3&workflow=" + wid
            if cursor:
                path += "&cursor=" + cursor
            r = self.get(path)
            self.assertEqual(r.status, 200, r)
            seen += [x["number"] for x in r.json["licences"]]
            cursor = r.json["next_cursor"]
            if not cursor:
                break
        self.assertEqual(seen, nums[::-1])
        # A cursor stays good while licences are issued between pages.
        r = self.get("/v1/public/licences?limit=2&workflow=" + wid)
        cursor = r.json["next_cursor"]
        self.issue(wid)
        r = self.get("/v1/public/licences?limit=2&workflow=%s&cursor=%s" % (wid, cursor))
        self.assertEqual([x["number"] for x in r.json["licences"]], nums[::-1][2:4])

    def test_bad_parameters_are_422_and_unknown_number_404(self):
        for q in ["q=" + "a" * 101, "status=active", "limit=0", "limit=501", "limit=x",
                  "cursor=abc", "cursor=-1", "cursor=99999999", "workflow=no-such-wf",
                  "sort=number", "q=x&page=2"]:
            r = self.get("/v1/public/licences?" + q)
            self.assertEqual((r.status, r.error_code), (422, "invalid_request"), (q, r))
            if not q.startswith(("limit", "cursor")):
                r = self.get("/v1/public/licences.csv?" + q)
                self.assertEqual(r.status, 422, (q, r))
        r = self.get("/v1/public/licences.csv?limit=5")
        self.assertEqual(r.status, 422, r)
        # 100 characters is the limit, counted in characters (Thai is 3 bytes each).
        r = self.get("/v1/public/licences?q=" + "%E0%B8%81" * 100)
        self.assertEqual(r.status, 200, r)
        r = self.get("/v1/public/licences/NO-SUCH-00001")
        self.assertEqual((r.status, r.error_code), (404, "not_found"), r)

    def test_one_licence_with_document_and_jws(self):
        wid, _ = self.publish()
        num = self.issue(wid, business_name="ร้านข้าวมันไก่")
        r = self.get("/v1/public/licences/" + num)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["fields"]["business_name"], "ร้านข้าวมันไก่")
        self.assertEqual(r.json["document"]["number"], num)
        self.assertEqual(r.json["document"]["fields"], r.json["fields"])
        self.assertEqual(len(r.json["jws"].split(".")), 3)
        listed = self.get("/v1/public/licences?q=" + num).json["licences"][0]
        self.assertEqual({k: v for k, v in r.json.items() if k not in ("document", "jws")},
                         listed)

    # -- the CSV export ---------------------------------------------------------

    def test_csv_quoting_formula_guard_and_columns(self):
        wid, pfx = self.publish(title="Food, drink & \"more\"")
        names = ["=SUM(A1:A9)", "+66 2 123 4567", "-minus", "@home", "\tTabbed",
                 'Say "hi", friend', "two\nlines", "plain"]
        nums = [self.issue(wid, business_name=n) for n in names]
        self.w.plat.post("/v1/licences/%s/revoke" % nums[-1], {"reason": "x"})
        text, rows = self.csv_rows("?q=" + pfx)
        self.assertTrue(text.startswith(
            "number,workflow,title,status,valid_from,valid_until,revoked_at,fields\r\n"))
        self.assertEqual(rows[0], ["number", "workflow", "title", "status", "valid_from",
                                   "valid_until", "revoked_at", "fields"])
        body = rows[1:]
        self.assertEqual([r[0] for r in body], nums[::-1])
        by_num = {r[0]: r for r in body}
        self.assertEqual(by_num[nums[-1]][3], "revoked")
        self.assertEqual(by_num[nums[-1]][6], "2030-01-07T02:00:00.000Z")
        self.assertEqual(by_num[nums[0]][6], "")  # null: an empty cell
        self.assertEqual(by_num[nums[0]][2], 'Food, drink & "more"')
        self.assertIn('"Food, drink & ""more"""', text)
        fields = {n: json.loads(by_num[num][7]) for n, num in zip(names, nums)}
        self.assertEqual(fields["plain"], {"business_name": "plain", "district": "bang-rak"})
        # The JSON object cell starts with '{': no guard. With workflow=,
        # each field has its own column, and the guard shows.
        text, rows = self.csv_rows("?workflow=" + wid)
        self.assertEqual(rows[0], ["number", "workflow", "title", "status", "valid_from",
                                   "valid_until", "revoked_at", "field.business_name",
                                   "field.district"])
        col = {r[0]: r[7] for r in rows[1:]}
        self.assertEqual(col[nums[0]], "'=SUM(A1:A9)")
        self.assertEqual(col[nums[1]], "'+66 2 123 4567")
        self.assertEqual(col[nums[2]], "'-minus")
        self.assertEqual(col[nums[3]], "'@home")
        self.assertEqual(col[nums[4]], "'\tTabbed")
        self.assertEqual(col[nums[5]], 'Say "hi", friend')
        self.assertEqual(col[nums[6]], "two\nlines")
        self.assertIn('"two\nlines"', text)
        self.assertEqual({r[8] for r in rows[1:]}, {"bang-rak"})
        # Every record ends with CRLF, none with a bare LF.
        self.assertEqual(text.count("\r\n"), len(rows))
        # status filter.
        _, rows = self.csv_rows("?status=revoked&workflow=" + wid)
        self.assertEqual([r[0] for r in rows[1:]], [nums[-1]])

    def test_csv_of_many_slices_and_a_reader_that_stalls(self):
        wid, pfx = self.publish()
        nums = [self.issue(wid, business_name="Shop " + "x" * 150 + str(i)) for i in range(450)]
        _, rows = self.csv_rows("?workflow=" + wid)
        self.assertEqual([r[0] for r in rows[1:]], nums[::-1])
        # A client that asks for the whole registry and reads nothing holds
        # nothing more than the socket buffers and one slice, and the server goes
        # on answering others.
        s = socket.create_connection(("127.0.0.1", self.server.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /v1/public/licences.csv HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)
        r = self.get("/healthz")
        self.assertEqual(r.status, 200, r)
        r = self.get("/v1/public/licences?limit=1&workflow=" + wid)
        self.assertEqual(r.json["licences"][0]["number"], nums[-1])
        # Reading it to the end then gives the whole export.
        data = b""
        s.settimeout(10)
        while not data.endswith(b"\r\n0\r\n\r\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        self.assertTrue(data.endswith(b"\r\n0\r\n\r\n"), data[-200:])
        self.assertIn(nums[0].encode(), data)

    def test_csv_readers_that_go_mid_export(self):
        wid, _ = self.publish()
        nums = [self.issue(wid, business_name="Gone %d" % i) for i in range(300)]
        for k in range(20):
            s = socket.create_connection(("127.0.0.1", self.server.port))
            q = "" if k % 2 else "?workflow=" + wid
            s.sendall(("GET /v1/public/licences.csv%s HTTP/1.1\r\nHost: x\r\n\r\n"
                       % q).encode())
            s.settimeout(10)
            got = b""
            while len(got) < 12 + k * 500:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            self.assertTrue(got.startswith(b"HTTP/1.1 200"), got[:100])
            s.close()
        r = self.get("/healthz")
        self.assertEqual(r.status, 200, r)
        _, rows = self.csv_rows("?workflow=" + wid)
        self.assertEqual([r[0] for r in rows[1:]], nums[::-1])


if __name__ == "__main__":
    main()
