"""test_ui_inbox.py: the agency inbox page /ui/inbox (SPEC §13, §4, §1) in
headless Chromium against a real server.

One server with `--test-clock=TIME` for the class; each test makes its own
World (three fresh agencies, the first with a Thai name) and requests of a
three-agency workflow with a Thai title (intake by A, then B and C, then A).

What is checked, through the page (tests/browser/page.js: no console error,
no failed request, no 4xx that the test did not expect; screenshots at
desktop and phone size):
- A's token in the fragment (#agency=A&token=...) lists A's open tasks in
  the API's order with their due time, the Thai agency name drawn in a Thai
  font, every task with buttons data-action=approve|reject|return, and the
  token is gone from the address bar; nothing scrolls sideways on a phone;
- clicking approve on a task moves the request (checked through the API:
  the step approved by A, the next steps open), and the list updates;
- return with a reason typed in: the step waits for the applicant and the
  reason is the step's (API);
- a task decided meanwhile (by the agency's system): the page's click is
  the API's 409 (a stale expected_version), shown, and the list is read
  again; nothing changed;
- "Show the request" shows the tracking view the API gives the agency (the
  form in plain), and only when asked;
- nothing without a token (the sign-in box only); a wrong token shows the
  server's 401 and no task; B's token for A's inbox shows the 403 and no
  task of A's; B's own inbox holds none of A's tasks; a platform token
  reads the inbox but its click on approve is the API's 403 and changes
  nothing.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import Server, World, main, step_of  # noqa: E402
from ui_browser import open_page, thai_font_used  # noqa: E402

START = "2030-01-07T09:00:00+07:00"
THAI_AGENCY = "สำนักอนามัย กรุงเทพมหานคร (BMA Health, test)"
THAI_TITLE = "ใบอนุญาตจัดตั้งสถานที่จำหน่ายอาหาร"
TASKS = "[...document.querySelectorAll('#tasks li.task')].map(e => [e.dataset.request, e.dataset.step])"
ACTIONS = ("[...document.querySelectorAll('#tasks li.task')].map(e => "
           "[...e.querySelectorAll('[data-action]')].map(b => b.dataset.action))")


def task_sel(rid, step):
    return '#tasks li.task[data-request="%s"][data-step="%s"]' % (rid, step)


class InboxPage(unittest.TestCase):
    server = None

    @classmethod
    def setUpClass(cls):
        cls.server = Server(extra_args=["--test-clock=" + START]).start()
        cls.base = "http://127.0.0.1:%d" % cls.server.port

    @classmethod
    def tearDownClass(cls):
        rc = cls.server.stop()
        cls.server.cleanup()
        assert rc == 0, "osse exited with %s" % rc

    def setUp(self):
        w = self.w = World(self.server)
        r = w.plat.put("/v1/agencies/" + w.A, {"name": THAI_AGENCY})
        self.assertIn(r.status, (200, 201), r)
        self.tok = {ag: w.principal("agency", agency=ag)["token"] for ag in w.agencies}
        self.wid = w.workflow(title=THAI_TITLE)
        self.rids = [w.submit(self.wid)["id"] for _ in range(3)]

    def inbox(self, agency, token, name, steps=(), allow=(), sizes=("desktop", "phone"),
              **kw):
        frag = "#agency=%s&token=%s" % (agency, token)
        return open_page(self.base, "/ui/inbox" + frag, name, steps=steps, allow=allow,
                         sizes=sizes, **kw)

    def test_lists_the_agencys_tasks_in_order(self):
        w = self.w
        want = [(t["request_id"], t["step"]) for t in w.inbox(w.A, client=w.ag[w.A])]
        self.assertEqual(sorted(want), sorted((rid, "intake") for rid in self.rids))
        out = self.inbox(w.A, self.tok[w.A], "inbox-list",
                         steps=[{"waitFor": "document.querySelectorAll('#tasks li.task').length"
                                            " === %d" % len(want)}],
                         collect={"tasks": TASKS, "actions": ACTIONS,
                                  "due": "[...document.querySelectorAll('#tasks .due time')]"
                                         ".map(t => t.getAttribute('datetime'))",
                                  "hash": "location.hash",
                                  "stored": "JSON.stringify(Object.keys(localStorage))",
                                  "width": "document.documentElement.scrollWidth"},
                         fonts={"agency": "#agency-name"})
        api = w.inbox(w.A, client=w.ag[w.A])
        for size, page in out["pages"].items():
            v = page["values"]
            self.assertEqual([tuple(t) for t in v["tasks"]], want, size)
            self.assertEqual(v["actions"], [["approve", "reject", "return"]] * len(want), size)
            self.assertEqual(v["due"], [t["due_at"] for t in api], size)
            self.assertEqual(v["hash"], "", "the token stays in the address bar (%s)" % size)
            self.assertNotIn(self.tok[w.A], page["url"], size)
            self.assertEqual(v["stored"], "[]", "nothing in localStorage (%s)" % size)
            if size == "phone":
                self.assertLessEqual(v["width"], 390, "the page scrolls sideways on a phone")
            self.assertIn(THAI_AGENCY, page["text"], size)
            self.assertIn(THAI_TITLE, page["text"], size)
            self.assertTrue(thai_font_used(page["fonts"]["agency"]), (size, page["fonts"]))
            # The list shows no personal data: the form is shown only on request.
            form = w.view(self.rids[0])["form"]
            self.assertNotIn(form["applicant_name"], page["text"], size)

    def test_approve_through_the_page_moves_the_request(self):
        w = self.w
        rid = self.rids[1]
        before = w.view(rid)
        self.assertEqual(step_of(before, "intake")["state"], "open")
        out = self.inbox(w.A, self.tok[w.A], "inbox-approve", sizes=("desktop",), steps=[
            {"wait": task_sel(rid, "intake")},
            {"click": task_sel(rid, "intake") + ' [data-action="approve"]'},
            {"waitText": ["#status", "Recorded: approve of %s/intake" % rid]},
            {"waitFor": "!document.querySelector('%s')" % task_sel(rid, "intake").replace(
                "'", "\\'")},
        ], collect={"tasks": TASKS})
        after = w.view(rid)
        intake = step_of(after, "intake")
        self.assertEqual((intake["state"], intake["outcome"]), ("approved", "approve"), intake)
        self.assertEqual(step_of(after, "review_b")["state"], "open")
        self.assertEqual(step_of(after, "review_c")["state"], "open")
        self.assertEqual(after["status"], "in_progress")
        evs = w.plat.get("/v1/requests/%s/events" % rid).json["events"]
        decided = [e for e in evs if e["type"] == "TaskDecided"]
        self.assertEqual(len(decided), 1, decided)
        self.assertEqual(decided[0]["actor"]["kind"], "agency")
        # The list the page shows after the click: the others, not this one.
        tasks = [tuple(t) for t in out["pages"]["desktop"]["values"]["tasks"]]
        self.assertEqual(sorted(tasks), sorted((r, "intake") for r in self.rids if r != rid))
        # B now has review_b of it, in its own inbox through the page.
        out = self.inbox(w.B, self.tok[w.B], "inbox-next-agency", sizes=("desktop",),
                         steps=[{"wait": task_sel(rid, "review_b")}], collect={"tasks": TASKS})
        self.assertEqual([tuple(t) for t in out["pages"]["desktop"]["values"]["tasks"]],
                         [(rid, "review_b")])

    def test_return_with_a_reason(self):
        w = self.w
        rid = self.rids[2]
        sel = task_sel(rid, "intake")
        self.inbox(w.A, self.tok[w.A], "inbox-return", sizes=("phone",), steps=[
            {"wait": sel},
            {"fill": [sel + " textarea", "กรุณาแนบแผนผังร้าน (please add the floor plan)"]},
            {"click": sel + ' [data-action="return"]'},
            {"waitText": ["#status", "Recorded: return of %s/intake" % rid]},
        ])
        v = w.view(rid)
        st = step_of(v, "intake")
        self.assertEqual((v["status"], st["state"]), ("awaiting_info", "waiting_applicant"), v)
        self.assertEqual(st["reason"], "กรุณาแนบแผนผังร้าน (please add the floor plan)")

    def test_a_task_decided_meanwhile_is_a_clear_error(self):
        """The page lists the task; then the agency's system (here a fetch
        with the same token, from the page) approves it; the click on
        reject is the API's 409, the page says so and lists the rest."""
        w = self.w
        rid = self.rids[0]
        sel = task_sel(rid, "intake")
        meanwhile = ("window.__sent || (window.__sent = fetch('/v1/tasks/%s/intake/decision', "
                     "{method: 'POST', headers: {'Content-Type': 'application/json', "
                     "Authorization: 'Bearer ' + sessionStorage.getItem('osse.token')}, "
                     "body: JSON.stringify({outcome: 'approve'})}).then(r => window.__status = "
                     "r.status), false)" % rid)
        out = self.inbox(w.A, self.tok[w.A], "inbox-conflict", sizes=("desktop",),
                         allow=[r"/v1/tasks/"], steps=[
                             {"wait": sel}, {"waitFor": meanwhile},
                             {"waitFor": "window.__status === 200"},
                             {"click": sel + ' [data-action="reject"]'},
                             {"waitText": ["#problem", "409"]},
                             {"waitFor": "!document.querySelector('%s')" % sel}],
                         collect={"tasks": TASKS})
        page = out["pages"]["desktop"]
        self.assertIn("409 conflict: step intake changed", page["text"])
        self.assertEqual(sorted(tuple(t) for t in page["values"]["tasks"]),
                         sorted((r, "intake") for r in self.rids[1:]))
        intake = step_of(w.view(rid), "intake")
        self.assertEqual((intake["state"], intake["outcome"]), ("approved", "approve"),
                         "the page's reject changed nothing")

    def test_the_request_on_demand(self):
        """"Show the request": the tracking view the API gives the agency
        (its form in plain, SPEC §8), shown only when asked for."""
        w = self.w
        rid = self.rids[1]
        sel = task_sel(rid, "intake")
        name = w.view(rid, client=w.ag[w.A])["form"]["applicant_name"]
        out = self.inbox(w.A, self.tok[w.A], "inbox-request", sizes=("phone",), steps=[
            {"wait": sel}, {"click": sel + " button.show-request"},
            {"waitText": [sel + " .request", name]}])
        self.assertIn(name, out["pages"]["phone"]["text"])

    def test_the_token_alone_signs_in(self):
        """SPEC §13: a person signs in with the agency's token; from the
        fragment #token=... alone, the page asks GET /v1/principals/me whose
        it is and lists that agency's tasks; a token of no agency (a
        portal's) without an agency id is told so and sees nothing."""
        w = self.w
        want = [(t["request_id"], t["step"]) for t in w.inbox(w.A, client=w.ag[w.A])]
        out = open_page(self.base, "/ui/inbox#token=" + self.tok[w.A], "inbox-token-only",
                        steps=[{"waitFor": "document.querySelectorAll('#tasks li.task').length"
                                           " === %d" % len(want)}],
                        collect={"tasks": TASKS, "actions": ACTIONS,
                                 "id": "document.getElementById('agency-id').textContent"})
        for size, page in out["pages"].items():
            v = page["values"]
            self.assertEqual(sorted(tuple(t) for t in v["tasks"]), sorted(want), size)
            self.assertEqual(v["actions"], [["approve", "reject", "return"]] * len(want), size)
            self.assertEqual(v["id"], w.A, size)
        portal = w.principal("portal")["token"]
        out = open_page(self.base, "/ui/inbox#token=" + portal, "inbox-portal-token",
                        sizes=("desktop",), steps=[{"waitText": ["#status", "not an agency"]}],
                        collect={"tasks": TASKS,
                                 "signin": "!document.getElementById('signin-card').hidden"})
        page = out["pages"]["desktop"]
        self.assertEqual((page["values"]["tasks"], page["values"]["signin"]), ([], True))
        for rid in self.rids:
            self.assertNotIn(rid, page["text"])

    def test_no_token_shows_nothing(self):
        out = open_page(self.base, "/ui/inbox", "inbox-signed-out", steps=[
            {"waitText": ["#status", "Not signed in"]}],
            collect={"tasks": TASKS, "signin": "!document.getElementById('signin-card').hidden",
                     "inbox": "!document.getElementById('inbox').hidden"})
        for size, page in out["pages"].items():
            v = page["values"]
            self.assertEqual((v["tasks"], v["signin"], v["inbox"]), ([], True, False), size)
            for rid in self.rids:
                self.assertNotIn(rid, page["text"], size)

    def test_wrong_token_is_a_clear_error(self):
        w = self.w
        out = self.inbox(w.A, "not-a-token", "inbox-wrong-token", allow=[r"/v1/agencies/"],
                         steps=[{"waitText": ["#problem", "401"]}],
                         collect={"tasks": TASKS,
                                  "signin": "!document.getElementById('signin-card').hidden",
                                  "token": "sessionStorage.getItem('osse.token')"})
        for size, page in out["pages"].items():
            v = page["values"]
            self.assertEqual((v["tasks"], v["signin"], v["token"]), ([], True, None), size)
            self.assertIn("unauthorized", page["text"], size)
            for rid in self.rids:
                self.assertNotIn(rid, page["text"], size)

    def test_another_agency_sees_none_of_these_tasks(self):
        w = self.w
        # B's token, typed into the box, for A's inbox: the server's 403.
        out = open_page(self.base, "/ui/inbox", "inbox-other-agency", sizes=("desktop",),
                        allow=[r"/v1/agencies/"], steps=[
                            {"fill": ["#agency", w.A]}, {"fill": ["#token", self.tok[w.B]]},
                            {"click": "#signin-button"}, {"waitText": ["#problem", "403"]}],
                        collect={"tasks": TASKS})
        page = out["pages"]["desktop"]
        self.assertEqual(page["values"]["tasks"], [])
        self.assertIn("forbidden", page["text"])
        for rid in self.rids:
            self.assertNotIn(rid, page["text"])
        # B's own inbox: empty (its steps have not opened).
        out = self.inbox(w.B, self.tok[w.B], "inbox-empty", steps=[
            {"waitFor": "!document.getElementById('inbox').hidden"}],
            collect={"tasks": TASKS, "empty": "!document.getElementById('empty').hidden"})
        for size, page in out["pages"].items():
            self.assertEqual((page["values"]["tasks"], page["values"]["empty"]), ([], True), size)
            for rid in self.rids:
                self.assertNotIn(rid, page["text"], size)

    def test_platform_reads_but_cannot_decide(self):
        w = self.w
        rid = self.rids[0]
        sel = task_sel(rid, "intake")
        self.inbox(w.A, w.admin_token, "inbox-platform", sizes=("desktop",),
                   allow=[r"/v1/tasks/"], steps=[
                       {"wait": sel}, {"click": sel + ' [data-action="approve"]'},
                       {"waitText": ["#problem", "403"]}, {"wait": sel + " button:enabled"}])
        self.assertEqual(step_of(w.view(rid), "intake")["state"], "open")


if __name__ == "__main__":
    main()
