"""test_crash.py: SIGKILL under load loses nothing acknowledged and never
leaves half a command (SPEC §11).

Several rounds on one data directory. In each round 8 client threads (4
portals, 4 agency systems) submit, decide, return, answer and withdraw as fast
as they can, recording every 2xx answer; after a random 0.5-2.5 s the server
gets SIGKILL and is started again on the same data. Then, from outside:

- /v1/log has seq 1..N without a gap, and every stream's versions are 1..n;
- every acknowledged submission, decision, information and withdrawal is in
  its request's events, up to the version its answer reported;
- no command is half-written: each request stream is replayed here, in
  Python, from the workflow definition; every command's head event
  (RequestSubmitted, TaskDecided, InfoProvided, RequestWithdrawn) must be
  valid in the state before it and be followed by exactly the consequence
  events (StepOpened, StepSkipped, RequestCompleted, RequestRejected) the
  definition implies - so a stream cut inside a command is caught;
- the views agree with the log: each request's tracking view (status, step
  states, version), each agency's inbox (= the open steps for it across all
  requests) and the request list (= the request streams);
- the views on disk agree with the log (issue 13): every request's record,
  written with each batch that changes it, so the kill lands while records
  are being written, is byte for byte what `osse replay --data` rebuilds
  from the log alone (none missing, none different), and the replay's
  digest is the restarted server's.

OSSE_CRASH_ROUNDS (default 4) sets the number of rounds.
"""

import os
import random
import sys
import threading
import time
import traceback
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import (Client, Server, good_form, log_events, main,  # noqa: E402
                          replay_data, three_agency_workflow, uniq)

ROUNDS = int(os.environ.get("OSSE_CRASH_ROUNDS", "4"))
HEADS = {"RequestSubmitted", "TaskDecided", "InfoProvided", "RequestWithdrawn"}
CONSEQUENCES = {"StepOpened", "StepSkipped", "RequestCompleted", "RequestRejected"}
FINAL_STEP = {"approved", "rejected", "done", "skipped", "failed", "cancelled"}
DONE_STEP = {"approved", "done", "skipped"}
FINAL_STATUS = {"completed", "rejected", "withdrawn", "expired"}


class Model:
    """A request's state recomputed from its events, and the expected
    consequences of each command, from the definition (task steps only)."""

    def __init__(self, definition):
        self.steps = list(definition["steps"])
        self.after = {n: list(s.get("after", [])) for n, s in definition["steps"].items()}
        self.agency = {n: s.get("agency") for n, s in definition["steps"].items()}

    def new(self):
        return {"status": None, "steps": {n: "pending" for n in self.steps}}

    @staticmethod
    def derived(st):
        if any(v == "waiting_applicant" for v in st["steps"].values()):
            return "awaiting_info"
        return "in_progress"

    def openable(self, st):
        return [n for n in self.steps if st["steps"][n] == "pending"
                and all(st["steps"][a] in DONE_STEP for a in self.after[n])]

    def apply_head(self, st, ev):
        """Applies a head event; returns (error or None, expected consequence
        list of (type, step))."""
        t, d = ev["type"], ev["data"]
        steps = st["steps"]
        if t == "RequestSubmitted":
            if st["status"] is not None:
                return "second RequestSubmitted", []
            st["status"] = "in_progress"
            return None, [("StepOpened", n) for n in self.openable(st)]
        if st["status"] is None:
            return "%s before RequestSubmitted" % t, []
        if st["status"] in FINAL_STATUS:
            return "%s after the request ended (%s)" % (t, st["status"]), []
        if t == "RequestWithdrawn":
            for n in steps:
                if steps[n] not in FINAL_STEP:
                    steps[n] = "cancelled"
            st["status"] = "withdrawn"
            return None, []
        step = d.get("step")
        if step not in steps:
            return "%s names unknown step %r" % (t, step), []
        if t == "InfoProvided":
            if steps[step] != "waiting_applicant":
                return "InfoProvided for %s in state %s" % (step, steps[step]), []
            steps[step] = "open"
            st["status"] = self.derived(st)
            return None, []
        # TaskDecided
        if steps[step] != "open":
            return "TaskDecided on %s in state %s" % (step, steps[step]), []
        outcome = d.get("outcome")
        if outcome == "approve":
            steps[step] = "approved"
            cons = [("StepOpened", n) for n in self.openable(st)]
            if not cons and all(v in DONE_STEP for v in steps.values()):
                cons = [("RequestCompleted", None)]
            return None, cons
        if outcome == "reject":
            steps[step] = "rejected"
            return None, [("RequestRejected", None)]
        if outcome == "return":
            steps[step] = "waiting_applicant"
            st["status"] = self.derived(st)
            return None, []
        return "TaskDecided with outcome %r" % outcome, []

    def apply_consequence(self, st, ev):
        t = ev["type"]
        if t == "StepOpened":
            st["steps"][ev["data"]["step"]] = "open"
            st["status"] = self.derived(st)
        elif t == "StepSkipped":
            st["steps"][ev["data"]["step"]] = "skipped"
        elif t == "RequestCompleted":
            st["status"] = "completed"
        elif t == "RequestRejected":
            for n, v in st["steps"].items():
                if v not in FINAL_STEP:
                    st["steps"][n] = "cancelled"
            st["status"] = "rejected"

    def replay(self, rid, evs):
        """evs: the stream's events in order. Returns (state, commands,
        problems); commands are (head event, [consequence events])."""
        st = self.new()
        problems = []
        commands = []
        i = 0
        while i < len(evs):
            head = evs[i]
            if head["type"] not in HEADS:
                problems.append("%s v%d: %s is not the start of a command"
                                % (rid, head["version"], head["type"]))
                i += 1
                continue
            err, expected = self.apply_head(st, head)
            if err:
                problems.append("%s v%d: %s" % (rid, head["version"], err))
            j = i + 1
            cons = []
            while j < len(evs) and evs[j]["type"] not in HEADS:
                cons.append(evs[j])
                j += 1
            got = [(e["type"], e["data"].get("step") if e["type"].startswith("Step") else None)
                   for e in cons]
            unknown = [e["type"] for e in cons if e["type"] not in CONSEQUENCES]
            if unknown:
                problems.append("%s v%d: unexpected event types %s" % (rid, head["version"],
                                                                       unknown))
            if sorted(got, key=str) != sorted(expected, key=str):
                problems.append("%s v%d %s(%s): consequences %s, expected %s (half-written "
                                "command?)" % (rid, head["version"], head["type"],
                                               head["data"].get("step", ""), got, expected))
            elif any(t.startswith("Request") for t, _ in got[:-1]):
                problems.append("%s v%d: events after the request ended: %s"
                                % (rid, head["version"], got))
            for e in cons:
                if e["type"] in CONSEQUENCES:
                    self.apply_consequence(st, e)
            commands.append((head, cons))
            i = j
        return st, commands, problems


class Load:
    """The clients of one round and what the server acknowledged to them."""

    def __init__(self, port, portals, agencies, wid, rng):
        self.port = port
        self.portals = portals      # list of tokens
        self.agencies = agencies    # list of (agency id, token)
        self.wid = wid
        self.rng = rng
        self.lock = threading.Lock()
        self.killed = threading.Event()
        self.stop = threading.Event()
        self.subs = {}              # rid -> version
        self.owner = {}             # rid -> portal token
        self.decisions = []         # (rid, step, outcome, version)
        self.infos = []             # (rid, step, version)
        self.withdrawals = []       # (rid, version)
        self.returned = {t: [] for t in portals}
        self.unexpected = []        # answers or failures that are not allowed
        self.counts = {"submit": 0, "decide": 0, "info": 0, "withdraw": 0, "conflict": 0}

    def note(self, what):
        with self.lock:
            self.unexpected.append(what)

    def run_thread(self, fn, *args):
        try:
            fn(*args)
        except Exception as ex:  # noqa: BLE001
            if not self.killed.is_set():
                self.note("client failed before the kill: %r\n%s" % (ex, traceback.format_exc()))

    def portal(self, token, seed):
        rng = random.Random(seed)
        c = Client(self.port, token, keepalive=True, timeout=15)
        mine = []
        try:
            while not self.stop.is_set():
                x = rng.random()
                with self.lock:
                    pending = self.returned[token]
                    ret = pending.pop(rng.randrange(len(pending))) if pending and x < 0.5 \
                        else None
                if ret:
                    rid, step = ret
                    r = c.post("/v1/requests/%s/info" % rid,
                               {"step": step, "form": {"seats": rng.randint(0, 90)},
                                "message": "here it is"})
                    if r.status == 200:
                        with self.lock:
                            self.infos.append((rid, step, r.json["version"]))
                            self.counts["info"] += 1
                    elif r.status == 409:
                        with self.lock:
                            self.counts["conflict"] += 1
                    else:
                        self.note(("info", rid, step, r.status, r.body[:300]))
                elif mine and x > 0.96:
                    rid = mine.pop(rng.randrange(len(mine)))
                    r = c.post("/v1/requests/%s/withdraw" % rid, {"reason": "crash test"})
                    if r.status == 200:
                        with self.lock:
                            self.withdrawals.append((rid, r.json["version"]))
                            self.counts["withdraw"] += 1
                    elif r.status == 409:
                        with self.lock:
                            self.counts["conflict"] += 1
                    else:
                        self.note(("withdraw", rid, r.status, r.body[:300]))
                else:
                    r = c.post("/v1/requests", {"workflow": self.wid, "form": good_form(rng)})
                    if r.status == 201:
                        rid = r.json["id"]
                        mine.append(rid)
                        with self.lock:
                            self.subs[rid] = r.json["version"]
                            self.owner[rid] = token
                            self.counts["submit"] += 1
                    else:
                        self.note(("submit", r.status, r.body[:300]))
        finally:
            c.close()

    def agency(self, agency, token, seed):
        rng = random.Random(seed)
        c = Client(self.port, token, keepalive=True, timeout=15)
        try:
            while not self.stop.is_set():
                r = c.get("/v1/agencies/%s/tasks?state=open&limit=25" % agency)
                if r.status != 200:
                    self.note(("inbox", agency, r.status, r.body[:300]))
                    return
                tasks = r.json["tasks"]
                if not tasks:
                    time.sleep(0.005)
                    continue
                for t in rng.sample(tasks, min(len(tasks), 5)):
                    x = rng.random()
                    outcome = "approve" if x < 0.8 else "return" if x < 0.92 else "reject"
                    body = {"outcome": outcome, "reason": "crash test"}
                    r = c.post("/v1/tasks/%s/%s/decision" % (t["request_id"], t["step"]), body)
                    if r.status == 200:
                        rid = t["request_id"]
                        with self.lock:
                            self.decisions.append((rid, t["step"], outcome, r.json["version"]))
                            self.counts["decide"] += 1
                            if outcome == "return" and rid in self.owner:
                                self.returned[self.owner[rid]].append((rid, t["step"]))
                    elif r.status == 409:
                        with self.lock:
                            self.counts["conflict"] += 1
                    else:
                        self.note(("decide", t, outcome, r.status, r.body[:300]))
        finally:
            c.close()


class TestCrash(unittest.TestCase):

    def setUp(self):
        self.server = Server()
        self.rng = random.Random(int(os.environ.get("OSSE_CRASH_SEED", time.time() * 1000)))
        self.passed = False

    def tearDown(self):
        if self.server.alive():
            self.server.kill()
        if not self.passed:
            sys.stderr.write("server stderr tail (%s):\n%s\n"
                             % (self.server.log_path, self.server.stderr_tail(60)))
            # keep the data for a post-mortem
            sys.stderr.write("data kept in %s\n" % self.server.data_dir)
        else:
            self.server.cleanup()

    def setup_world(self):
        srv = self.server.start(timeout=60)
        plat = srv.client(srv.admin_token(), keepalive=True)
        sfx = uniq("c")
        self.agencies = ["a-" + sfx, "b-" + sfx, "c-" + sfx]
        for ag in self.agencies:
            r = plat.put("/v1/agencies/" + ag, {"name": ag})
            self.assertIn(r.status, (200, 201), r)
        self.wid = "crash-" + sfx
        self.definition = three_agency_workflow(self.wid, *self.agencies, calendar=None)
        r = plat.post("/v1/workflows", self.definition)
        self.assertEqual(r.status, 201, r)

        def principal(role, agency=None):
            body = {"role": role, "name": "crash " + role}
            if agency:
                body["agency"] = agency
            r = plat.post("/v1/principals", body)
            self.assertEqual(r.status, 201, r)
            return r.json["token"]

        self.portal_tokens = [principal("portal") for _ in range(2)]
        self.agency_tokens = [(ag, principal("agency", ag)) for ag in self.agencies]
        plat.close()

    def test_kill_during_load_rounds(self):
        self.setup_world()
        model = Model(self.definition)
        acked = {"subs": {}, "decisions": [], "infos": [], "withdrawals": [], "owner": {}}
        t0 = time.time()
        waiting = []
        for rnd in range(1, ROUNDS + 1):
            port = self.server.port
            load = Load(port, self.portal_tokens, self.agency_tokens, self.wid, self.rng)
            # carry requests and answers owed to applicants over from earlier rounds
            load.owner.update(acked["owner"])
            for rid, step in waiting:
                if rid in load.owner:
                    load.returned[load.owner[rid]].append((rid, step))
            threads = []
            for i in range(4):
                threads.append(threading.Thread(
                    target=load.run_thread,
                    args=(load.portal, self.portal_tokens[i % 2], self.rng.random())))
            ag_threads = [self.agency_tokens[0], self.agency_tokens[0], self.agency_tokens[1],
                          self.agency_tokens[2]]
            for ag, tok in ag_threads:
                threads.append(threading.Thread(target=load.run_thread,
                                                args=(load.agency, ag, tok, self.rng.random())))
            for t in threads:
                t.daemon = True
                t.start()
            delay = self.rng.uniform(0.5, 2.5)
            time.sleep(delay)
            load.killed.set()
            load.stop.set()
            self.server.kill()
            for t in threads:
                t.join(30)
                self.assertFalse(t.is_alive(), "a client thread hangs after the kill")
            self.assertEqual(load.unexpected, [], "round %d: unexpected answers" % rnd)
            sys.stderr.write("round %d: killed after %.2fs; acknowledged %s\n"
                             % (rnd, delay, load.counts))
            self.assertGreater(load.counts["submit"], 0, "round %d: no submission succeeded" % rnd)
            acked["subs"].update(load.subs)
            acked["owner"].update(load.owner)
            acked["decisions"] += load.decisions
            acked["infos"] += load.infos
            acked["withdrawals"] += load.withdrawals
            self.server.start(timeout=60)
            states = self.verify(model, acked, "after kill %d" % rnd)
            waiting = [(rid, n) for rid, st in states.items()
                       for n, v in st["steps"].items() if v == "waiting_applicant"]
        # A clean stop and start must also give the same state.
        self.assertEqual(self.server.stop(), 0, "SIGTERM did not exit cleanly")
        self.server.start(timeout=60)
        self.verify(model, acked, "after a clean restart")
        sys.stderr.write("crash test: %d rounds in %.1fs\n" % (ROUNDS, time.time() - t0))
        self.passed = True

    # ---------------------------------------------------------------------

    def verify(self, model, acked, when):
        plat = Client(self.server.port, self.server.admin_token(), keepalive=True, timeout=30)
        problems = []
        try:
            states = self._verify(plat, model, acked, problems)
            live = plat.get("/v1/admin/digest").json["digest"]
        finally:
            plat.close()
        digest, rec = replay_data(self.server.data_dir)
        if digest != live:
            problems.append("osse replay --data gives digest %s, the server %s" % (digest, live))
        if rec["missing"] or rec["different"] or rec["equal"] != len(states):
            problems.append("request records: %s for %d requests" % (rec, len(states)))
        ix = rec["indexes"]
        self.assertEqual(rec["snapshot"], "equal", rec)
        if ix["missing"] or ix["different"] or ix["extra"] or ix["equal"] < len(states):
            problems.append("index entries: %s for %d requests" % (ix, len(states)))
        if problems:
            self.fail("%s: %d problems:\n  %s" % (when, len(problems),
                                                  "\n  ".join(map(str, problems[:40]))))
        return states

    def _verify(self, plat, model, acked, problems):
        evs = log_events(plat)
        seqs = [e["seq"] for e in evs]
        if seqs != list(range(1, len(seqs) + 1)):
            gaps = [(a, b) for a, b in zip(seqs, seqs[1:]) if b != a + 1][:5]
            problems.append("log seq is not 1..%d without gap: first breaks %s, starts %s"
                            % (len(seqs), gaps, seqs[:1]))
        streams = {}
        for e in evs:
            streams.setdefault(e["stream"], []).append(e)
        for s, lst in streams.items():
            vs = [e["version"] for e in lst]
            if vs != list(range(1, len(vs) + 1)):
                problems.append("stream %s versions %s are not 1..n" % (s, vs[:20]))
        reqs = {s[len("request/"):]: lst for s, lst in streams.items()
                if s.startswith("request/")}

        # Acknowledged work is all there.
        for rid, v in acked["subs"].items():
            lst = reqs.get(rid)
            if not lst:
                problems.append("acknowledged request %s is not in the log" % rid)
                continue
            if len(lst) < v:
                problems.append("request %s has %d events, its 201 said version %d"
                                % (rid, len(lst), v))
            if lst[0]["type"] != "RequestSubmitted":
                problems.append("request %s starts with %s" % (rid, lst[0]["type"]))
        need = {}
        for rid, step, outcome, v in acked["decisions"]:
            need.setdefault((rid, "TaskDecided", step, outcome), []).append(v)
        for rid, step, v in acked["infos"]:
            need.setdefault((rid, "InfoProvided", step, None), []).append(v)
        for rid, v in acked["withdrawals"]:
            need.setdefault((rid, "RequestWithdrawn", None, None), []).append(v)
        for (rid, typ, step, outcome), versions in need.items():
            lst = reqs.get(rid, [])
            if len(lst) < max(versions):
                problems.append("request %s has %d events, an acknowledged %s said version %d"
                                % (rid, len(lst), typ, max(versions)))
            have = sorted(e["version"] for e in lst if e["type"] == typ
                          and (step is None or e["data"].get("step") == step)
                          and (outcome is None or e["data"].get("outcome") == outcome))
            # the k-th acknowledgement (by version) needs k matching events at or below it
            for k, v in enumerate(sorted(versions)):
                if len([h for h in have if h <= v]) < k + 1:
                    problems.append("acknowledged %s %s %s of %s (answer version %d) is not in "
                                    "the log (found at versions %s)"
                                    % (typ, step or "", outcome or "", rid, v, have))
                    break

        # No half-written command; recompute every request.
        model_states = {}
        for rid, lst in reqs.items():
            st, _, probs = model.replay(rid, lst)
            problems += probs
            model_states[rid] = st
            if lst[0]["type"] == "RequestSubmitted" and \
                    lst[0]["data"].get("workflow_version") not in (1, None):
                problems.append("request %s on workflow version %r"
                                % (rid, lst[0]["data"].get("workflow_version")))

        # The views agree with the log.
        for rid, st in model_states.items():
            r = plat.get("/v1/requests/" + rid)
            if r.status != 200:
                problems.append("GET /v1/requests/%s -> %s" % (rid, r))
                continue
            v = r.json
            got = {s["name"]: s["state"] for s in v["steps"]}
            if v["status"] != st["status"] or got != st["steps"] or \
                    v["version"] != len(reqs[rid]):
                problems.append("view of %s: status %s steps %s version %s; the log says "
                                "status %s steps %s version %d"
                                % (rid, v["status"], got, v["version"], st["status"],
                                   st["steps"], len(reqs[rid])))
        # The per-request events endpoint lists the same events as the log.
        for rid in random.sample(sorted(reqs), min(25, len(reqs))):
            r = plat.get("/v1/requests/%s/events" % rid)
            if r.status != 200:
                problems.append("GET /v1/requests/%s/events -> %s" % (rid, r))
                continue
            got = [(e["seq"], e["version"], e["type"]) for e in r.json["events"]
                   if e["stream"] == "request/" + rid]
            want = [(e["seq"], e["version"], e["type"]) for e in reqs[rid]]
            if got != want:
                problems.append("events of %s: %s; the log: %s" % (rid, got[:8], want[:8]))
        metrics = plat.get("/metrics").body.decode().splitlines()
        for ag in self.agencies:
            want = {(rid, n) for rid, st in model_states.items()
                    for n, s in st["steps"].items() if s == "open" and model.agency[n] == ag}
            got, cursor = [], None
            for _ in range(10000):
                path = "/v1/agencies/%s/tasks?state=open&limit=100" % ag
                if cursor:
                    path += "&cursor=" + cursor
                r = plat.get(path)
                if r.status != 200:
                    problems.append("inbox of %s -> %s" % (ag, r))
                    break
                got += [(t["request_id"], t["step"]) for t in r.json["tasks"]]
                cursor = r.json.get("next_cursor")
                if not cursor:
                    break
            if len(got) != len(set(got)):
                problems.append("inbox of %s lists a task twice" % ag)
            if set(got) != want:
                problems.append("inbox of %s: %d tasks; the log says %d; missing %s, extra %s"
                                % (ag, len(set(got)), len(want), sorted(want - set(got))[:5],
                                   sorted(set(got) - want)[:5]))
            # The metrics' count (kept as stints begin and end, and read back
            # from the records at a start) is the inbox's.
            line = 'osse_open_tasks{agency="%s",workflow="%s"} ' % (ag, self.wid)
            have = [m[len(line):] for m in metrics if m.startswith(line)]
            if have != [str(len(want))]:
                problems.append("%s says %s; the log says %d open" % (line, have, len(want)))
        listed, cursor = [], None
        for _ in range(10000):
            path = "/v1/requests?workflow=%s&limit=100" % self.wid
            if cursor:
                path += "&cursor=" + cursor
            r = plat.get(path)
            if r.status != 200:
                problems.append("request list -> %s" % r)
                break
            listed += [(q["id"], q["status"]) for q in r.json["requests"]]
            cursor = r.json.get("next_cursor")
            if not cursor:
                break
        ids = [x[0] for x in listed]
        if len(ids) != len(set(ids)):
            problems.append("the request list holds an id twice")
        if set(ids) != set(reqs):
            problems.append("the request list has %d requests, the log %d; missing %s, extra %s"
                            % (len(set(ids)), len(reqs), sorted(set(reqs) - set(ids))[:5],
                               sorted(set(ids) - set(reqs))[:5]))
        wrong = [(i, s, model_states[i]["status"]) for i, s in listed
                 if i in model_states and model_states[i]["status"] != s]
        if wrong:
            problems.append("request list statuses disagree with the log: %s" % wrong[:5])
        for status in ("in_progress", "completed", "rejected", "withdrawn"):
            n = sum(1 for st in model_states.values() if st["status"] == status)
            line = 'osse_requests{status="%s"} %d' % (status, n)
            if line not in metrics:
                problems.append("/metrics lacks %s: %s" % (line, [m for m in metrics
                                                                 if "osse_requests{" in m]))
        # newest first: the list order is the reverse of submission (seq) order
        order = [i for i in ids if i in reqs]
        by_seq = sorted(order, key=lambda i: -reqs[i][0]["seq"])
        if order != by_seq:
            problems.append("the request list is not newest first")
        return model_states


if __name__ == "__main__":
    main()
